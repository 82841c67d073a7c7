// trestle-bridge among the reference plugins: chained plugins (tuning, bandwidth)
// work on its result, it delegates to the reference host-local, and the reference
// bridge uses trestle-host-local. All at CNI 1.0.0, the newest the references speak.
import t from 'tap';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { bridgeEntry, bridgeName, gateway4, link, links, ping, reservations, resultAddresses, resultHostVeth, subnet4, veths, type Json } from '../helpers/bridge.js';

const version = '1.0.0';

t.test('tuning and bandwidth run on the trestle-bridge result, and the chain deletes cleanly', async (t) => {
  const sandbox = await Sandbox.create(t);
  const runner = sandbox.runner();
  const tunedMac = '02:42:0a:58:00:77';
  const list = sandbox.conflist(
    [
      bridgeEntry(sandbox),
      { type: 'tuning', mac: tunedMac, sysctl: { 'net.ipv4.conf.eth0.rp_filter': '2' } },
      { type: 'bandwidth', ingressRate: 8_000_000, ingressBurst: 80_000, egressRate: 4_000_000, egressBurst: 40_000 },
    ],
    version,
  );
  const container = await sandbox.addContainer();
  const attachment = sandbox.attachment(container);
  const result = runner.add(list, attachment);

  const eth0Entry = ((result['interfaces'] ?? []) as Json[]).find((entry) => entry['name'] === 'eth0');
  t.equal(eth0Entry?.['mac'], tunedMac, "tuning's MAC is in the chain's final result");
  t.equal((await link(sandbox, container.name, 'eth0'))?.address, tunedMac, 'eth0 has the MAC tuning set');
  const rpFilter = await sandbox.exec(container.name, 'cat', ['/proc/sys/net/ipv4/conf/eth0/rp_filter']);
  t.equal(String(rpFilter.stdout).trim(), '2', 'tuning set the sysctl inside the container');

  const hostVeth = resultHostVeth(result);
  const qdiscs = String((await sandbox.inNode('tc', ['qdisc', 'show', 'dev', hostVeth])).stdout);
  t.match(qdiscs, /qdisc tbf/, 'bandwidth shaped the host veth (ingress rate)');
  t.match(qdiscs, /qdisc ingress/, 'and redirects its traffic for the egress rate');
  const ifbs = (await links(sandbox, sandbox.node)).filter((entry) => entry.linkinfo?.info_kind === 'ifb');
  t.equal(ifbs.length, 1, 'bandwidth created its ifb device for the egress rate');
  t.ok(await ping(sandbox, container.name, gateway4), 'traffic still flows through the shaped, tuned interface');
  t.doesNotThrow(() => runner.check(list, attachment, result), 'CHECK of the whole chain passes');

  t.doesNotThrow(() => runner.del(list, attachment, result), 'DEL of the chain succeeds');
  t.strictSame(await veths(sandbox), [], 'no veth is left');
  t.equal((await links(sandbox, sandbox.node)).filter((entry) => entry.linkinfo?.info_kind === 'ifb').length, 0, 'no ifb device is left');
  t.strictSame(reservations(sandbox), [], 'the address is released');
});

t.test('trestle-bridge delegates to the reference host-local', async (t) => {
  const sandbox = await Sandbox.create(t);
  const runner = sandbox.runner();
  const entry = bridgeEntry(sandbox, { dualStack: true });
  const list = sandbox.conflist([{ ...entry, ipam: { ...(entry['ipam'] as Json), type: 'host-local' } }], version);
  const containers = [await sandbox.addContainer(), await sandbox.addContainer()];
  const attachments = containers.map((container) => sandbox.attachment(container));
  const results = attachments.map((attachment) => runner.add(list, attachment));
  const addresses = results.map(resultAddresses);
  t.strictSame(reservations(sandbox).sort(), addresses.flat().sort(), "the reference host-local's store holds the addresses");
  t.ok(await ping(sandbox, containers[0]!.name, addresses[1]![0]!), 'the containers reach each other');
  t.ok(await ping(sandbox, containers[0]!.name, addresses[1]![1]!), 'over IPv6 too');
  t.doesNotThrow(() => runner.check(list, attachments[0]!, results[0]!), 'CHECK passes, with the delegated IPAM CHECK');
  for (const [index, attachment] of attachments.entries()) runner.del(list, attachment, results[index]);
  t.strictSame(reservations(sandbox), [], 'DEL released the addresses through the reference host-local');
  t.strictSame(await veths(sandbox), [], 'and left no veth');
});

t.test('the reference bridge uses trestle-host-local', async (t) => {
  const sandbox = await Sandbox.create(t);
  const runner = sandbox.runner();
  const list = sandbox.conflist(
    [{ type: 'bridge', bridge: bridgeName, isDefaultGateway: true, ipam: { type: 'trestle-host-local', dataDir: sandbox.dataDir, ranges: [[{ subnet: subnet4 }]] } }],
    version,
  );
  const containers = [await sandbox.addContainer(), await sandbox.addContainer()];
  const attachments = containers.map((container) => sandbox.attachment(container));
  const results = attachments.map((attachment) => runner.add(list, attachment));
  const addresses = results.map(resultAddresses);
  t.strictSame(reservations(sandbox).sort(), addresses.flat().sort(), 'trestle-host-local reserved the addresses');
  t.ok(await ping(sandbox, containers[0]!.name, addresses[1]![0]!), 'the containers reach each other');
  t.ok(await ping(sandbox, containers[1]!.name, gateway4), 'and the gateway the reference bridge set up');
  t.doesNotThrow(() => runner.check(list, attachments[0]!, results[0]!), "CHECK passes, with trestle-host-local's CHECK");
  for (const [index, attachment] of attachments.entries()) runner.del(list, attachment, results[index]);
  t.strictSame(reservations(sandbox), [], 'DEL released the addresses');
  t.strictSame(await veths(sandbox), [], 'and left no veth');
});
