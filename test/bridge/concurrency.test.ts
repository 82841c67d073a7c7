// Twenty containers added at once on a node where the bridge does not exist yet:
// every ADD races to create it, and every one must succeed with its own address.
import t from 'tap';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { bridgeEntry, bridgeName, call, describe, gateway4, invoke, link, links, ping, pluginConfig, reservations, resultAddresses, veths, type Json } from '../helpers/bridge.js';

const containerCount = 20;

t.test(`${containerCount} concurrent ADDs on a fresh node, then ${containerCount} concurrent DELs`, async (t) => {
  const sandbox = await Sandbox.create(t);
  const config = pluginConfig(sandbox, bridgeEntry(sandbox, { dualStack: true, bridge: { ipMasq: true } }), '1.1.0');
  t.equal(await link(sandbox, sandbox.node, bridgeName), undefined, 'no bridge before the first ADD');
  const containers = [];
  for (let index = 0; index < containerCount; index++) containers.push(await sandbox.addContainer());
  const attachments = containers.map((container) => sandbox.attachment(container));

  const outcomes = await Promise.all(attachments.map((attachment) => invoke(sandbox, 'trestle-bridge', call('ADD', attachment), config)));
  const failed = outcomes.filter((outcome) => outcome.exitCode !== 0);
  t.strictSame(failed.map(describe), [], 'every ADD succeeds');

  const addresses = outcomes.flatMap((outcome) => resultAddresses(outcome.json));
  t.equal(addresses.length, containerCount * 2, 'an IPv4 and an IPv6 address each');
  t.equal(new Set(addresses).size, addresses.length, 'all addresses are distinct');
  t.strictSame(reservations(sandbox).sort(), [...addresses].sort(), 'the store holds exactly those');

  const nodeLinks = await links(sandbox, sandbox.node);
  t.strictSame(
    nodeLinks.filter((entry) => entry.linkinfo?.info_kind === 'bridge').map((entry) => entry.ifname),
    [bridgeName],
    'exactly one bridge exists',
  );
  t.equal(nodeLinks.filter((entry) => entry.master === bridgeName).length, containerCount, 'with one port per container');
  const bridgeMacs = new Set(outcomes.map((outcome) => ((outcome.json?.['interfaces'] ?? []) as Json[])[0]?.['mac']));
  t.strictSame([...bridgeMacs], [nodeLinks.find((entry) => entry.ifname === bridgeName)?.address], "every result reports the one bridge's MAC");
  const lastIpv4 = resultAddresses(outcomes[containerCount - 1]?.json)[0]!;
  t.ok(await ping(sandbox, containers[0]!.name, lastIpv4), 'the first container reaches the last one');
  t.ok(await ping(sandbox, containers[containerCount - 1]!.name, gateway4), 'the last container reaches the gateway');

  const deletions = await Promise.all(attachments.map((attachment) => invoke(sandbox, 'trestle-bridge', call('DEL', attachment), config)));
  t.strictSame(deletions.filter((outcome) => outcome.exitCode !== 0).map(describe), [], 'every DEL succeeds');
  t.strictSame(reservations(sandbox), [], 'no address stays reserved');
  t.strictSame(await veths(sandbox), [], 'no veth is left');
});
