// The netlink layer against the kernel, in sandbox namespaces only: every operation
// and query names a namespace the test created (none touches the test's own).
import { readlinkSync } from 'node:fs';
import t, { type Test } from 'tap';
import { addRoute, deleteAddress, listRoutes, replaceAddress } from '../../src/host/addresses.js';
import { createBridge, createVethPair, deleteLink, findLink, isolatePort, listLinks, bringUpLabelled, disableIpv6, setHairpin, setLinkUp, setPromiscuous } from '../../src/host/links.js';
import { applyOperations } from '../../src/host/operations.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';

const ownNamespace = () => readlinkSync('/proc/thread-self/ns/net');

interface IpLink {
  ifname: string;
  address: string;
  mtu: number;
  flags: string[];
  master?: string;
  ifalias?: string;
  linkinfo?: { info_kind?: string; info_slave_data?: { hairpin?: boolean; isolated?: boolean } };
  addr_info?: Array<{ family: string; local: string; prefixlen: number; broadcast?: string }>;
}

async function ipLink(sandbox: Sandbox, namespace: string, name: string): Promise<IpLink | undefined> {
  const outcome = await sandbox.exec(namespace, 'ip', ['-d', '-j', 'addr', 'show', 'dev', name], { reject: false });
  return outcome.exitCode === 0 ? (JSON.parse(outcome.stdout) as IpLink[])[0] : undefined;
}

async function setUp(t: Test) {
  const sandbox = await Sandbox.create(t);
  const container = await sandbox.addContainer();
  const before = ownNamespace();
  t.teardown(() => {
    if (ownNamespace() !== before) throw new Error('the test thread was left in another network namespace');
  });
  return { sandbox, container, node: sandbox.nodePath };
}

t.test('a bridge, a veth pair into the container, addresses and routes', async (t) => {
  const { sandbox, container, node } = await setUp(t);
  const before = ownNamespace();
  await applyOperations(
    [
      createBridge({ name: 'nlbr0', mac: '02:00:00:00:00:01', mtu: 1400 }),
      setLinkUp('nlbr0'),
      setPromiscuous('nlbr0', true),
      replaceAddress('10.77.0.1/24', 'nlbr0', { noDad: true }),
      replaceAddress('fd77::1/64', 'nlbr0', { noDad: true }),
      createVethPair({ hostName: 'vethnl0', hostMac: '02:00:00:00:00:02', peerName: 'eth0', peerMac: '02:00:00:00:00:03', peerNetns: container.path, master: 'nlbr0', mtu: 1400 }),
      bringUpLabelled('vethnl0', 'trestle/net/owner'),
      setHairpin('vethnl0', true),
      isolatePort('vethnl0'),
    ],
    node,
  );
  t.equal(ownNamespace(), before, 'the thread is back in its own namespace');
  const bridge = await ipLink(sandbox, sandbox.node, 'nlbr0');
  t.equal(bridge?.linkinfo?.info_kind, 'bridge');
  t.equal(bridge?.address, '02:00:00:00:00:01');
  t.equal(bridge?.mtu, 1400);
  t.ok(bridge?.flags.includes('UP') && bridge.flags.includes('PROMISC'), 'up and promiscuous');
  t.same(
    bridge?.addr_info?.filter((entry) => entry.family === 'inet').map((entry) => [entry.local, entry.prefixlen, entry.broadcast]),
    [['10.77.0.1', 24, '10.77.0.255']],
    'the gateway address, with its broadcast address',
  );
  t.ok(bridge?.addr_info?.some((entry) => entry.local === 'fd77::1' && entry.prefixlen === 64), 'the IPv6 gateway address');
  const host = await ipLink(sandbox, sandbox.node, 'vethnl0');
  t.equal(host?.master, 'nlbr0');
  t.equal(host?.ifalias, 'trestle/net/owner');
  t.equal(host?.linkinfo?.info_slave_data?.hairpin, true, 'hairpin on');
  t.equal(host?.linkinfo?.info_slave_data?.isolated, true, 'isolated');
  t.ok(host?.flags.includes('UP'), 'the host end is up');
  t.notOk(await ipLink(sandbox, sandbox.node, 'eth0'), 'the peer is not on the node');

  await applyOperations(
    [
      setLinkUp('lo'),
      setLinkUp('eth0'),
      replaceAddress('10.77.0.5/24', 'eth0'),
      replaceAddress('fd77::5/64', 'eth0', { noDad: true }),
      addRoute({ dst: '0.0.0.0/0', gw: '10.77.0.1', device: 'eth0' }),
      addRoute({ dst: '::/0', gw: 'fd77::1', device: 'eth0' }),
      addRoute({ dst: '10.88.0.0/16', gw: '10.77.0.1', device: 'eth0', mtu: 1300, advmss: 1200, priority: 7 }),
      addRoute({ dst: '10.99.0.0/16', device: 'eth0', table: 1000 }),
      addRoute({ dst: '10.66.0.0/16', device: 'eth0', scope: 0 }),
    ],
    container.path,
  );
  const eth0 = await ipLink(sandbox, container.name, 'eth0');
  t.equal(eth0?.address, '02:00:00:00:00:03');
  t.equal(eth0?.mtu, 1400);
  t.ok(eth0?.flags.includes('UP'), 'eth0 is up');
  t.ok(eth0?.addr_info?.some((entry) => entry.local === '10.77.0.5'), 'eth0 has its IPv4 address');
  const routes = JSON.parse((await sandbox.exec(container.name, 'ip', ['-j', '-d', 'route', 'show', 'table', 'all'])).stdout) as Array<Record<string, unknown>>;
  const route = (dst: string) => routes.find((entry) => entry['dst'] === dst && entry['type'] === 'unicast');
  t.equal(route('default')?.['gateway'], '10.77.0.1', 'IPv4 default route');
  t.equal(route('10.88.0.0/16')?.['metric'], 7, 'metric');
  t.same(route('10.88.0.0/16')?.['metrics'], [{ mtu: 1300, advmss: 1200 }], 'mtu and advmss');
  t.equal(route('10.99.0.0/16')?.['table'], '1000', 'a table above 255');
  t.equal(route('10.99.0.0/16')?.['scope'], 'link', 'a route without gateway is on-link');
  t.equal(route('10.66.0.0/16')?.['scope'], 'global', 'an explicit scope');

  const found = await findLink('eth0', container.path);
  t.equal(found?.mac, '02:00:00:00:00:03');
  t.same(
    found?.addresses.map((entry) => `${entry.address}/${entry.prefixLength}`).sort(),
    ['10.77.0.5/24', 'fd77::5/64', ...(found?.addresses.some((entry) => entry.address.startsWith('fe80')) ? [found.addresses.find((entry) => entry.address.startsWith('fe80'))!.address + '/64'] : [])].sort(),
    'findLink reads the addresses',
  );
  const hostLink = await findLink('vethnl0', node);
  t.match(hostLink, { kind: 'veth', master: 'nlbr0', alias: 'trestle/net/owner', hairpin: true, up: true, mtu: 1400 });
  t.same((await listLinks(node, { master: 'nlbr0' })).map((link) => link.name), ['vethnl0'], 'ports of the bridge');
  t.same((await listLinks(node, { kind: 'bridge' })).map((link) => link.name), ['nlbr0'], 'bridges');
  t.same(await listLinks(node, { master: 'nosuchbr' }), [], 'no ports of a bridge that does not exist');
  const listed = await listRoutes(container.path);
  t.ok(listed.some((entry) => entry.dst === '0.0.0.0/0' && entry.gateway === '10.77.0.1' && entry.dev === 'eth0'), 'listRoutes: IPv4 default');
  t.ok(listed.some((entry) => entry.dst === '::/0' && entry.gateway === 'fd77::1'), 'listRoutes: IPv6 default');
  t.notOk(listed.some((entry) => entry.dst === '10.99.0.0/16'), 'listRoutes: the main table only');

  await applyOperations([deleteAddress('10.77.0.1/24', 'nlbr0'), deleteAddress('10.77.0.1/24', 'nlbr0'), deleteLink('vethnl0'), deleteLink('vethnl0')], node);
  t.notOk(await ipLink(sandbox, container.name, 'eth0'), 'deleting the host end deleted the peer');
  t.notOk((await ipLink(sandbox, sandbox.node, 'nlbr0'))?.addr_info?.some((entry) => entry.local === '10.77.0.1'), 'the address is gone; deleting it again is tolerated');
  t.equal(await findLink('vethnl0', node), undefined, 'findLink: no such link');
});

t.test('errors: tolerated, named, and the batch stops at the first', async (t) => {
  const { sandbox, container, node } = await setUp(t);
  const before = ownNamespace();
  const creation = createBridge({ name: 'nlbr1', mac: '02:00:00:00:01:01' });
  t.same(await applyOperations([creation], node), []);
  t.same(await applyOperations([creation], node), [creation], 'an existing bridge is tolerated and reported');
  await sandbox.exec(container.name, 'ip', ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1']);
  const clash = applyOperations(
    [createVethPair({ hostName: 'vethnl1', hostMac: '02:00:00:00:01:02', peerName: 'eth0', peerMac: '02:00:00:00:01:03', peerNetns: container.path, master: 'nlbr1' })],
    node,
  );
  await t.rejects(clash, { name: 'HostError', message: /^failed to create veth pair vethnl1\/eth0: File exists/, failedStep: 'create veth pair vethnl1/eth0' }, 'a name taken in the container');
  t.notOk(await ipLink(sandbox, sandbox.node, 'vethnl1'), 'and no host end was left');
  await t.rejects(applyOperations([replaceAddress('10.5.0.1/24', 'nosuch0')], node), { message: 'failed to add address 10.5.0.1/24 to nosuch0: No such device', notFound: true });
  // One error among several: what came before stays, nothing after runs.
  const batch = applyOperations([setLinkUp('lo'), replaceAddress('10.6.0.2/24', 'eth0'), addRoute({ dst: '10.250.0.0/16', gw: '198.51.100.1', device: 'eth0' }), replaceAddress('10.6.0.3/24', 'eth0')], container.path);
  await t.rejects(batch, { message: /^failed to add route 10\.250\.0\.0\/16 via 198\.51\.100\.1 on eth0: Network is unreachable/ });
  const eth0 = await ipLink(sandbox, container.name, 'eth0');
  t.same(eth0?.addr_info?.filter((entry) => entry.family === 'inet').map((entry) => entry.local), ['10.6.0.2'], 'the steps before the failure were applied, none after');
  // A sysctl would act on this thread's namespace (the machine's, here): refused.
  await t.rejects(applyOperations([disableIpv6('eth1')], container.path), { name: 'HostError', message: /only in this process's own network namespace/ }, 'turning IPv6 off is refused for a batch meant for another namespace');
  t.equal((await sandbox.exec(container.name, 'cat', ['/proc/sys/net/ipv6/conf/eth1/disable_ipv6'])).stdout.trim(), '0', 'and the link there is untouched');
  t.equal(ownNamespace(), before, 'back in its own namespace after each failure');
});

t.test('a bridge that has as many ports as the kernel allows is named as such', async (t) => {
  const { sandbox, container, node } = await setUp(t);
  // 512 veth pairs, both ends enslaved until the kernel refuses (it allows 1,023).
  const batch = ['link add nlfull type bridge'];
  for (let i = 0; i < 512; i++) batch.push(`link add nlfa${i} type veth peer name nlfb${i}`, `link set nlfa${i} master nlfull`, `link set nlfb${i} master nlfull`);
  await sandbox.inNode('ip', ['-force', '-batch', '-'], { input: `${batch.join('\n')}\n`, reject: false });
  const veth = createVethPair({ hostName: 'vethnl3', hostMac: '02:00:00:00:03:02', peerName: 'eth0', peerMac: '02:00:00:00:03:03', peerNetns: container.path, master: 'nlfull' });
  await t.rejects(applyOperations([veth], node), { name: 'HostError', message: 'failed to create veth pair vethnl3/eth0: bridge nlfull already has the 1,023 ports the kernel allows (Exchange full)' });
  t.notOk(await ipLink(sandbox, sandbox.node, 'vethnl3'), 'and no host end was left');
});

t.test('a namespace that is gone or is none', async (t) => {
  const { sandbox, node } = await setUp(t);
  const before = ownNamespace();
  await t.rejects(applyOperations([setLinkUp('lo')], `/run/netns/trc-${sandbox.id}-none`), { name: 'HostError', notFound: true, message: /^cannot open network namespace/ });
  await t.rejects(applyOperations([setLinkUp('lo')], sandbox.dir), { name: 'HostError', message: /^cannot (open|enter) network namespace/ }, 'a directory');
  await t.rejects(findLink('lo', '/proc/self/ns/mnt'), /cannot enter network namespace \/proc\/self\/ns\/mnt: Invalid argument/, 'a namespace of another type');
  t.equal(ownNamespace(), before, 'back in its own namespace');
  const veth = createVethPair({ hostName: 'vethnl2', hostMac: '02:00:00:00:02:02', peerName: 'eth0', peerMac: '02:00:00:00:02:03', peerNetns: `/run/netns/trc-${sandbox.id}-none`, master: 'nlbr2' });
  await applyOperations([createBridge({ name: 'nlbr2', mac: '02:00:00:00:02:01' })], node);
  await t.rejects(applyOperations([veth], node), /cannot open network namespace/, 'a veth into a namespace that is gone');
  t.notOk(await ipLink(sandbox, sandbox.node, 'vethnl2'), 'no host end');
  t.equal(ownNamespace(), before);
});

t.test('a namespace named by /proc/PID/ns/net, as some runtimes pass it', async (t) => {
  const { sandbox, container, node } = await setUp(t);
  const before = ownNamespace();
  // A process of the test's own inside the container namespace; ended by its PID.
  const holder = sandbox.spawn(container.name, 'sleep', ['60']);
  t.teardown(() => {
    holder.kill('SIGKILL');
  });
  const pid = holder.pid as number;
  let path = '';
  for (let waited = 0; waited < 5_000; waited += 10) {
    path = `/proc/${pid}/ns/net`;
    try {
      if (readlinkSync(path) === readlinkSync(`/proc/${process.pid}/ns/net`)) throw new Error('not entered yet');
      break;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  await applyOperations([createBridge({ name: 'nlbr3', mac: '02:00:00:00:03:01' }), setLinkUp('nlbr3')], node);
  await applyOperations([createVethPair({ hostName: 'vethnl3', hostMac: '02:00:00:00:03:02', peerName: 'eth3', peerMac: '02:00:00:00:03:03', peerNetns: path, master: 'nlbr3' })], node);
  await applyOperations([setLinkUp('eth3'), replaceAddress('10.78.0.5/24', 'eth3')], path);
  const eth3 = await findLink('eth3', path);
  t.equal(eth3?.mac, '02:00:00:00:03:03', 'the peer is in the namespace the /proc path names');
  t.ok(eth3?.addresses.some((entry) => entry.address === '10.78.0.5'), 'and configured there');
  t.ok(await ipLink(sandbox, container.name, 'eth3'), 'as ip sees it by the namespace name');
  t.equal(ownNamespace(), before, 'back in its own namespace');
});
