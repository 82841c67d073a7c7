// Each configuration key of trestle-bridge, observed in the kernel after ADD.
import t from 'tap';
import type { Attachment } from '../../src/runtime/chain.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import {
  addressesOf,
  bridgeEntry,
  bridgeName,
  call,
  defaultRoute,
  describe,
  gateway4,
  invoke,
  link,
  ping,
  pluginConfig,
  reservations,
  resultAddresses,
  resultHostVeth,
  veths,
  type Json,
  type Outcome,
} from '../helpers/bridge.js';

const version = '1.0.0';

async function addOne(sandbox: Sandbox, entry: Json, options: { extra?: Json; cniArgs?: string } = {}): Promise<{ outcome: Outcome; attachment: Attachment; namespace: string; hostVeth: string }> {
  const container = await sandbox.addContainer();
  const attachment = sandbox.attachment(container);
  if (options.cniArgs !== undefined) attachment.cniArgs = options.cniArgs;
  const outcome = await invoke(sandbox, 'trestle-bridge', call('ADD', attachment), pluginConfig(sandbox, entry, version, options.extra));
  return { outcome, attachment, namespace: container.name, hostVeth: resultHostVeth(outcome.json) };
}

t.test('mtu applies to the bridge and both ends of the veth', async (t) => {
  const sandbox = await Sandbox.create(t);
  const { outcome, namespace, hostVeth } = await addOne(sandbox, bridgeEntry(sandbox, { bridge: { mtu: 1400 } }));
  t.equal(outcome.exitCode, 0, describe(outcome));
  t.equal((await link(sandbox, sandbox.node, bridgeName))?.mtu, 1400, 'bridge');
  t.equal((await link(sandbox, sandbox.node, hostVeth))?.mtu, 1400, 'host veth');
  t.equal((await link(sandbox, namespace, 'eth0'))?.mtu, 1400, 'container eth0');
});

t.test('hairpinMode turns hairpin on for the host veth only when asked', async (t) => {
  const sandbox = await Sandbox.create(t);
  const hairpin = await addOne(sandbox, bridgeEntry(sandbox, { bridge: { hairpinMode: true } }));
  t.equal(hairpin.outcome.exitCode, 0, describe(hairpin.outcome));
  t.equal((await link(sandbox, sandbox.node, hairpin.hostVeth))?.linkinfo?.info_slave_data?.hairpin, true, 'hairpin on with hairpinMode');
  const plain = await addOne(sandbox, bridgeEntry(sandbox));
  t.equal((await link(sandbox, sandbox.node, plain.hostVeth))?.linkinfo?.info_slave_data?.hairpin, false, 'hairpin off without it');
});

t.test('portIsolation isolates the host veth: isolated containers do not reach each other', async (t) => {
  const sandbox = await Sandbox.create(t);
  const entry = bridgeEntry(sandbox, { bridge: { portIsolation: true } });
  const first = await addOne(sandbox, entry);
  const second = await addOne(sandbox, entry);
  t.equal(first.outcome.exitCode, 0, describe(first.outcome));
  t.equal((await link(sandbox, sandbox.node, first.hostVeth))?.linkinfo?.info_slave_data?.isolated, true, 'the port is isolated');
  t.notOk(await ping(sandbox, first.namespace, resultAddresses(second.outcome.json)[0]!), 'no traffic between two isolated ports');
  t.ok(await ping(sandbox, first.namespace, gateway4), 'the gateway still answers');
});

t.test('promiscMode puts the bridge in promiscuous mode', async (t) => {
  const sandbox = await Sandbox.create(t);
  const { outcome } = await addOne(sandbox, bridgeEntry(sandbox, { bridge: { promiscMode: true } }));
  t.equal(outcome.exitCode, 0, describe(outcome));
  const bridge = await link(sandbox, sandbox.node, bridgeName);
  t.ok(bridge?.flags.includes('PROMISC'), 'the bridge is promiscuous');
});

t.test('the container MAC comes from runtimeConfig.mac, args.cni.mac or CNI_ARGS MAC=', async (t) => {
  const sandbox = await Sandbox.create(t);
  const entry = bridgeEntry(sandbox);
  const sources: Array<[string, string, { extra?: Json; cniArgs?: string }]> = [
    ['runtimeConfig.mac', '02:42:0a:58:00:aa', { extra: { runtimeConfig: { mac: '02:42:0a:58:00:aa' } } }],
    ['args.cni.mac', '02:42:0a:58:00:bb', { extra: { args: { cni: { mac: '02:42:0a:58:00:bb' } } } }],
    ['CNI_ARGS MAC=', '02:42:0a:58:00:cc', { cniArgs: 'IgnoreUnknown=1;MAC=02:42:0A:58:00:CC' }],
  ];
  for (const [source, mac, options] of sources) {
    const { outcome, namespace } = await addOne(sandbox, entry, options);
    t.equal(outcome.exitCode, 0, `${source}: ${describe(outcome)}`);
    t.equal((await link(sandbox, namespace, 'eth0'))?.address, mac, `${source}: eth0 has the MAC`);
    t.equal(((outcome.json?.['interfaces'] ?? []) as Json[])[2]?.['mac'], mac, `${source}: the result reports it`);
  }
  const invalid = await addOne(sandbox, entry, { extra: { runtimeConfig: { mac: '01:00:5e:00:00:01' } } });
  t.equal(invalid.outcome.json?.['code'], 7, 'a multicast MAC is refused');
  t.match(invalid.outcome.json?.['msg'], 'runtimeConfig.mac', 'naming where it came from');
});

t.test('isGateway without isDefaultGateway: gateway address on the bridge, no default route', async (t) => {
  const sandbox = await Sandbox.create(t);
  const { outcome, namespace } = await addOne(sandbox, bridgeEntry(sandbox, { bridge: { isDefaultGateway: false, isGateway: true } }));
  t.equal(outcome.exitCode, 0, describe(outcome));
  t.ok(addressesOf(await link(sandbox, sandbox.node, bridgeName), 4).includes(`${gateway4}/24`), 'the bridge holds the gateway address');
  t.equal(await defaultRoute(sandbox, namespace, 4), undefined, 'the container has no default route');
  t.notOk('routes' in (outcome.json ?? {}), 'the result lists no route');
  t.ok(await ping(sandbox, namespace, gateway4), 'the gateway answers on the subnet');
});

t.test('forceAddress: another address of the subnet on the bridge is an error without it, replaced with it', async (t) => {
  const sandbox = await Sandbox.create(t);
  await sandbox.inNode('ip', ['-batch', '-'], {
    input: [`link add ${bridgeName} type bridge`, `addr add 10.88.0.254/24 dev ${bridgeName}`, `link set ${bridgeName} up`].join('\n') + '\n',
  });
  const refused = await addOne(sandbox, bridgeEntry(sandbox));
  t.equal(refused.outcome.json?.['code'], 7, `refused without forceAddress (${describe(refused.outcome)})`);
  t.match(refused.outcome.json?.['msg'], /already has address 10\.88\.0\.254\/24 .*forceAddress/, 'naming the address and the key');
  t.strictSame(await veths(sandbox), [], 'no veth was left');
  t.strictSame(reservations(sandbox), [], 'no address stays reserved');
  t.ok(addressesOf(await link(sandbox, sandbox.node, bridgeName), 4).includes('10.88.0.254/24'), 'the old address is untouched');

  const forced = await addOne(sandbox, bridgeEntry(sandbox, { bridge: { forceAddress: true } }));
  t.equal(forced.outcome.exitCode, 0, `accepted with forceAddress (${describe(forced.outcome)})`);
  t.strictSame(addressesOf(await link(sandbox, sandbox.node, bridgeName), 4), [`${gateway4}/24`], 'the gateway replaced the old address');
  t.ok(await ping(sandbox, forced.namespace, gateway4), 'and answers');
});

t.test('disableContainerInterface leaves the container interface down and unconfigured', async (t) => {
  const sandbox = await Sandbox.create(t);
  const entry = bridgeEntry(sandbox, { bridge: { disableContainerInterface: true } });
  const { outcome, attachment, namespace, hostVeth } = await addOne(sandbox, entry);
  t.equal(outcome.exitCode, 0, describe(outcome));
  const eth0 = await link(sandbox, namespace, 'eth0');
  t.ok(eth0, 'eth0 exists');
  t.notOk(eth0?.flags.includes('UP'), 'eth0 is down');
  t.strictSame(addressesOf(eth0, 4), [], 'eth0 has no IPv4 address');
  t.equal(await defaultRoute(sandbox, namespace, 4), undefined, 'the container has no route');
  t.equal((await link(sandbox, sandbox.node, hostVeth))?.master, bridgeName, 'the host end is a port of the bridge');
  const check = await invoke(sandbox, 'trestle-bridge', call('CHECK', attachment), pluginConfig(sandbox, entry, version, { prevResult: outcome.json }));
  t.equal(check.exitCode, 0, `CHECK passes (${describe(check)})`);
});

t.test('IPv6 addresses are usable right after ADD unless enabledad asks for DAD', async (t) => {
  const sandbox = await Sandbox.create(t);
  for (const [label, enabledad, tentative] of [
    ['by default', undefined, false],
    ['enabledad false', false, false],
    ['enabledad true', true, true],
  ] as const) {
    const { outcome, namespace } = await addOne(sandbox, bridgeEntry(sandbox, { dualStack: true, bridge: enabledad === undefined ? {} : { enabledad } }));
    t.equal(outcome.exitCode, 0, `${label}: ${describe(outcome)}`);
    const eth0 = await link(sandbox, namespace, 'eth0');
    const global = eth0?.addr_info.find((entry) => entry.family === 'inet6' && entry.local.startsWith('fd88:'));
    t.ok(global, `${label}: eth0 has its IPv6 address`);
    t.equal(global?.tentative === true, tentative, `${label}: ${tentative ? 'tentative' : 'not tentative'} right after ADD`);
  }
});

t.test('an IPv4-only container interface gives itself no IPv6 address unless keepIPv6; a dual-stack one does', async (t) => {
  const sandbox = await Sandbox.create(t);
  const generation = async (namespace: string): Promise<unknown> => {
    const shown = await sandbox.exec(namespace, 'ip', ['-d', '-j', 'link', 'show', 'eth0']);
    return (JSON.parse(shown.stdout) as Array<Record<string, unknown>>)[0]?.['inet6_addr_gen_mode'];
  };
  const inet6 = async (namespace: string): Promise<string[]> => ((await link(sandbox, namespace, 'eth0'))?.addr_info ?? []).filter((entry) => entry.family === 'inet6').map((entry) => entry.local);

  const ipv4 = await addOne(sandbox, bridgeEntry(sandbox));
  t.equal(ipv4.outcome.exitCode, 0, describe(ipv4.outcome));
  t.equal(await generation(ipv4.namespace), 'none', 'IPv4 only: eth0 generates no IPv6 address');
  t.strictSame(await inet6(ipv4.namespace), [], 'and has none, not even a link-local one');
  t.ok(await ping(sandbox, ipv4.namespace, gateway4), 'IPv4 still reaches the gateway');

  const kept = await addOne(sandbox, bridgeEntry(sandbox, { bridge: { keepIPv6: true } }));
  t.equal(kept.outcome.exitCode, 0, describe(kept.outcome));
  t.equal(await generation(kept.namespace), 'eui64', "keepIPv6: the kernel's default");
  t.ok((await inet6(kept.namespace)).some((address) => address.startsWith('fe80:')), 'and eth0 has its link-local address');

  const dual = await addOne(sandbox, bridgeEntry(sandbox, { dualStack: true }));
  t.equal(dual.outcome.exitCode, 0, describe(dual.outcome));
  t.equal(await generation(dual.namespace), 'eui64', 'dual stack: untouched');
  t.ok((await inet6(dual.namespace)).some((address) => address.startsWith('fe80:')), 'with its link-local address beside fd88::');

  const wrong = await addOne(sandbox, bridgeEntry(sandbox, { bridge: { keepIPv6: 'yes' } }));
  t.equal(wrong.outcome.json?.['code'], 7, 'keepIPv6 must be true or false');
  t.match(wrong.outcome.json?.['msg'], '"keepIPv6" must be true or false');
});

t.test('each veth end gets one TX and one RX queue unless vethQueues asks for more', async (t) => {
  const sandbox = await Sandbox.create(t);
  const queues = async (namespace: string, name: string): Promise<[unknown, unknown]> => {
    const shown = JSON.parse((await sandbox.exec(namespace, 'ip', ['-d', '-j', 'link', 'show', name])).stdout) as Array<Record<string, unknown>>;
    return [shown[0]?.['num_tx_queues'], shown[0]?.['num_rx_queues']];
  };

  const plain = await addOne(sandbox, bridgeEntry(sandbox));
  t.equal(plain.outcome.exitCode, 0, describe(plain.outcome));
  t.strictSame(await queues(sandbox.node, plain.hostVeth), [1, 1], 'host end');
  t.strictSame(await queues(plain.namespace, 'eth0'), [1, 1], 'container end');
  t.ok(await ping(sandbox, plain.namespace, gateway4), 'traffic flows');

  const more = await addOne(sandbox, bridgeEntry(sandbox, { bridge: { vethQueues: 4 } }));
  t.equal(more.outcome.exitCode, 0, describe(more.outcome));
  t.strictSame(await queues(sandbox.node, more.hostVeth), [4, 4], 'host end');
  t.strictSame(await queues(more.namespace, 'eth0'), [4, 4], 'container end');
  t.ok(await ping(sandbox, more.namespace, gateway4), 'traffic flows');

  for (const wrong of [0, 4097, 1.5, '2']) {
    const refused = await addOne(sandbox, bridgeEntry(sandbox, { bridge: { vethQueues: wrong } }));
    t.equal(refused.outcome.json?.['code'], 7, `vethQueues ${JSON.stringify(wrong)} is refused`);
    t.match(refused.outcome.json?.['msg'], '"vethQueues" must be an integer from 1 to 4096');
  }
});

t.test('a bridge the ADD creates has multicast snooping off unless mcastSnooping is true; an existing bridge keeps its own', async (t) => {
  const snooping = async (sandbox: Sandbox, name: string) => (await link(sandbox, sandbox.node, name))?.linkinfo?.info_data?.mcast_snooping;

  const created = await Sandbox.create(t);
  const plain = await addOne(created, bridgeEntry(created));
  t.equal(plain.outcome.exitCode, 0, describe(plain.outcome));
  t.equal(await snooping(created, bridgeName), 0, 'off on the bridge it created');
  t.ok(await ping(created, plain.namespace, gateway4), 'traffic flows');

  const asked = await Sandbox.create(t);
  const on = await addOne(asked, bridgeEntry(asked, { bridge: { mcastSnooping: true } }));
  t.equal(on.outcome.exitCode, 0, describe(on.outcome));
  t.equal(await snooping(asked, bridgeName), 1, 'on with mcastSnooping: true');
  t.ok(await ping(asked, on.namespace, gateway4), 'traffic flows');

  // A bridge made by someone else is theirs to configure.
  const existing = await Sandbox.create(t);
  await existing.exec(existing.node, 'ip', ['link', 'add', bridgeName, 'type', 'bridge', 'mcast_snooping', '1']);
  const reused = await addOne(existing, bridgeEntry(existing));
  t.equal(reused.outcome.exitCode, 0, describe(reused.outcome));
  t.equal(await snooping(existing, bridgeName), 1, 'left as it was');

  const wrong = await addOne(created, bridgeEntry(created, { bridge: { mcastSnooping: 'no' } }));
  t.equal(wrong.outcome.json?.['code'], 7, 'mcastSnooping must be true or false');
  t.match(wrong.outcome.json?.['msg'], '"mcastSnooping" must be true or false');
});
