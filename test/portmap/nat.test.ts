// Masquerade and port mapping against the real kernel: a node namespace running the
// plugins, containers behind its bridge, and a LAN namespace as the outside world
// that has no route to the container subnet.
import { execa } from 'execa';
import t from 'tap';
import { ChainError } from '../../src/runtime/chain.js';
import { Sandbox, lan } from '../../src/sandbox/sandbox.js';
import { addChainConcurrently, delChainConcurrently, fetchIn, natPlugins, ruleset, setElements, startUdpEcho, udpRoundTrip, waitForHttp, webRoot } from '../helpers/nat.js';

const web = { hostPort: 8080, containerPort: 80, protocol: 'tcp' };
const dns = { hostPort: 5353, containerPort: 53, protocol: 'udp' };

t.test('masquerade, DNAT from the LAN, the node, loopback and containers', async (t) => {
  const sandbox = await Sandbox.create(t);
  await sandbox.addLan();
  const list = sandbox.conflist(natPlugins(sandbox, { dualStack: true }));
  const runner = sandbox.runner();
  const first = await sandbox.addContainer();
  const second = await sandbox.addContainer();
  const firstAttachment = sandbox.attachment(first, { capabilities: { portMappings: [web, dns] } });
  const firstResult = runner.add(list, firstAttachment);
  const secondResult = runner.add(list, sandbox.attachment(second, { capabilities: { portMappings: [{ ...web, hostPort: 8081 }] } }));
  const addresses = (firstResult['ips'] as Array<{ address: string }>).map((ip) => ip.address.split('/')[0] as string);
  const [first4, first6] = addresses as [string, string];
  t.match(first4, /^10\.77\./, 'IPv4 address from the subnet');
  t.match(first6, /^fd77::/, 'IPv6 address from the subnet');
  t.doesNotThrow(() => runner.check(list, firstAttachment, firstResult), 'CHECK passes');
  // Per-subnet pairs, shared by both containers; only the containers themselves are
  // elements each.
  const counts = async () => Object.fromEntries(await Promise.all(['masqskip4', 'masqskip6', 'hairpindst4', 'hairpinnet4', 'hairpindst6', 'hairpinnet6'].map(async (name) => [name, (await setElements(sandbox, 'set', name)).length])));
  t.same(await counts(), { masqskip4: 2, masqskip6: 2, hairpindst4: 2, hairpinnet4: 2, hairpindst6: 2, hairpinnet6: 1 }, 'subnet pairs once for both containers, each container once');

  const lanRoutes = String((await sandbox.exec(sandbox.lanNs, 'ip', ['route'])).stdout);
  t.notMatch(lanRoutes, /10\.77\.|default/, 'the LAN has no route to the container subnet');

  sandbox.spawn(sandbox.lanNs, 'busybox', ['httpd', '-f', '-p', '9000', '-h', webRoot(sandbox, 'lan', 'lan\n')]);
  sandbox.spawn(first.name, 'busybox', ['httpd', '-f', '-p', '80', '-h', webRoot(sandbox, 'c1', 'hello from c1\n')]);
  startUdpEcho(sandbox, first.name, '0.0.0.0', 53);
  startUdpEcho(sandbox, first.name, '::', 53);
  await waitForHttp(sandbox, first.name, 'http://127.0.0.1/');
  await waitForHttp(sandbox, sandbox.lanNs, 'http://127.0.0.1:9000/');

  const seen4 = await fetchIn(sandbox, first.name, `http://${lan.hostAddress}:9000/cgi-bin/peer`);
  t.match(seen4 ?? '', lan.nodeAddress, 'container reaches the LAN; the LAN sees the node address (masquerade)');
  const seen6 = await fetchIn(sandbox, first.name, `http://[${lan.hostAddress6}]:9000/cgi-bin/peer`);
  t.match(seen6 ?? '', lan.nodeAddress6, 'IPv6 is masqueraded too');
  const toNeighbour = await fetchIn(sandbox, second.name, `http://${first4}/`);
  t.equal(toNeighbour, 'hello from c1', 'containers on the bridge talk directly');

  const page = 'hello from c1';
  t.equal(await fetchIn(sandbox, sandbox.lanNs, `http://${lan.nodeAddress}:8080/`), page, 'LAN -> node:8080 -> container:80 (tcp)');
  t.equal(await fetchIn(sandbox, sandbox.lanNs, `http://[${lan.nodeAddress6}]:8080/`), page, 'LAN -> [node]:8080 over IPv6');
  t.equal(await udpRoundTrip(sandbox, sandbox.lanNs, lan.nodeAddress, 5353), 'echo:ping', 'LAN -> node:5353 -> container:53 (udp)');
  t.equal(await fetchIn(sandbox, sandbox.node, 'http://127.0.0.1:8080/'), page, 'node -> 127.0.0.1:8080');
  t.equal(await fetchIn(sandbox, sandbox.node, `http://${lan.nodeAddress}:8080/`), page, 'node -> its own address:8080');
  t.equal(await fetchIn(sandbox, first.name, `http://${lan.nodeAddress}:8080/`), page, 'container -> its own host port (hairpin)');
  t.equal(await fetchIn(sandbox, second.name, `http://${lan.nodeAddress}:8080/`), page, "container -> a neighbour's host port");
  const seenThroughHostPort = await fetchIn(sandbox, second.name, `http://${lan.nodeAddress}:8080/cgi-bin/peer`);
  const second4 = ((secondResult['ips'] as Array<{ address: string }>)[0]?.address ?? '').split('/')[0] as string;
  t.ok(seenThroughHostPort !== undefined && !seenThroughHostPort.includes(second4), `hairpin: the neighbour is masqueraded, c1 sees ${seenThroughHostPort?.trim()} and not ${second4}`);

  const before = await ruleset(sandbox);
  const third = await sandbox.addContainer();
  const thirdAttachment = sandbox.attachment(third, { capabilities: { portMappings: [web] } });
  let conflict: unknown;
  try {
    runner.add(list, thirdAttachment);
  } catch (error) {
    conflict = error;
  }
  t.ok(conflict instanceof ChainError && conflict.failure.plugin === 'trestle-portmap' && conflict.failure.code === 102, 'a second container asking for 8080/tcp gets error 102');
  t.match((conflict as ChainError).failure.msg, /8080\/tcp is held by/, 'the error names the holder');
  runner.del(list, thirdAttachment);
  t.equal(await ruleset(sandbox), before, 'the failed ADD and its DEL changed nothing in the ruleset');
  t.equal(await fetchIn(sandbox, sandbox.lanNs, `http://${lan.nodeAddress}:8080/`), page, 'the first mapping still works');

  await execa('ip', ['netns', 'del', first.name]);
  runner.del(list, sandbox.attachment(first));
  runner.del(list, sandbox.attachment(first));
  const remaining = await ruleset(sandbox);
  t.notMatch(remaining, new RegExp(`${first4.replace(/\./g, '\\.')}\\b`), 'no rule element mentions the deleted container (netns gone, no prevResult, twice)');
  t.notMatch(remaining, /8080/, 'its host port is free');
  t.same(await counts(), { masqskip4: 2, masqskip6: 2, hairpindst4: 1, hairpinnet4: 2, hairpindst6: 1, hairpinnet6: 1 }, 'the subnet pairs stay for the container still there');

  runner.del(list, sandbox.attachment(second), secondResult);
  for (const [kind, name] of [['set', 'masq4'], ['set', 'masq6'], ['set', 'masqskip4'], ['set', 'masqskip6'], ['set', 'hairpindst4'], ['set', 'hairpinnet4'], ['set', 'hairpindst6'], ['set', 'hairpinnet6'], ['map', 'hp_any4'], ['map', 'hp_any6']] as const) {
    t.same(await setElements(sandbox, kind, name), [], `${name} is empty once every container is gone`);
  }
});

t.test('50 ADDs in parallel: no failure, distinct addresses, no duplicated shared rules', async (t) => {
  const sandbox = await Sandbox.create(t);
  const list = sandbox.conflist(natPlugins(sandbox));
  const containers = await Promise.all(Array.from({ length: 50 }, () => sandbox.addContainer()));
  const attachments = containers.map((container, index) =>
    sandbox.attachment(container, { capabilities: { portMappings: [{ hostPort: 20000 + index, containerPort: 80, protocol: 'tcp' }] } }),
  );
  const outcomes = await Promise.allSettled(attachments.map((attachment) => addChainConcurrently(sandbox, list, attachment)));
  const failures = outcomes.filter((outcome) => outcome.status === 'rejected').map((outcome) => String((outcome as PromiseRejectedResult).reason));
  t.same(failures, [], '0 failures');
  const addresses = outcomes.flatMap((outcome) => (outcome.status === 'fulfilled' ? [(outcome.value['ips'] as Array<{ address: string }>)[0]?.address] : []));
  t.equal(new Set(addresses).size, 50, '50 distinct addresses');
  const rules = await ruleset(sandbox);
  t.equal(rules.match(/masquerade/g)?.length, 6, 'the shared masquerade rules exist once each');
  t.equal(rules.match(/jump hostports/g)?.length, 2, 'the shared jumps exist once each');
  t.equal((await setElements(sandbox, 'map', 'hp_any4')).length, 50, 'one mapping per container');
  t.equal((await setElements(sandbox, 'set', 'masq4')).length, 50, 'one masquerade entry per container');
  const bridges = String((await sandbox.inNode('ip', ['-br', 'link', 'show', 'type', 'bridge'])).stdout).trim().split('\n');
  t.equal(bridges.length, 1, 'one bridge');
  await Promise.all(attachments.map((attachment) => delChainConcurrently(sandbox, list, attachment)));
  t.same(await setElements(sandbox, 'map', 'hp_any4'), [], 'parallel DELs remove every mapping');
  t.same(await setElements(sandbox, 'set', 'masq4'), [], 'and every masquerade entry');
});
