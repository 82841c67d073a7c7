// GC (CNI 1.1.0) removes what belongs to attachments the runtime no longer lists
// (addresses, host veths, masquerade entries) and nothing else; STATUS answers.
import t from 'tap';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { bridgeEntry, call, describe, gateway4, invoke, link, ping, pluginConfig, reservations, resultAddresses, resultHostVeth, veths } from '../helpers/bridge.js';

t.test('GC releases the addresses and deletes the host veths of stale attachments', async (t) => {
  const sandbox = await Sandbox.create(t);
  const runner = sandbox.runner();
  const list = sandbox.conflist([bridgeEntry(sandbox, { dualStack: true, bridge: { ipMasq: true } })], '1.1.0');
  // The namespaces stay alive: a veth only outlives its container when something
  // still holds the namespace, which is the case GC must clean up.
  const containers = await Promise.all([1, 2, 3].map(() => sandbox.addContainer()));
  const attachments = containers.map((container) => sandbox.attachment(container));
  const results = attachments.map((attachment) => runner.add(list, attachment));
  const addresses = results.map(resultAddresses);
  const hostVeths = results.map(resultHostVeth);
  t.equal(reservations(sandbox).length, 6, 'three containers hold two addresses each');
  t.equal((await veths(sandbox)).length, 3, 'and three host veths');

  runner.gc(list, [{ containerId: attachments[0]!.containerId, ifname: 'eth0' }]);

  t.strictSame(reservations(sandbox).sort(), [...addresses[0]!].sort(), 'only the valid attachment keeps its addresses');
  t.strictSame(await veths(sandbox), [hostVeths[0]], 'only its host veth is left');
  for (const index of [1, 2]) {
    t.equal(await link(sandbox, containers[index]!.name, 'eth0'), undefined, `stale container ${index + 1} lost its eth0 with the veth`);
  }
  const ruleset = String((await sandbox.inNode('nft', ['list', 'ruleset'])).stdout);
  t.ok(ruleset.includes(addresses[0]![0]!), 'the valid attachment keeps its masquerade entry');
  t.notOk([...addresses[1]!, ...addresses[2]!].some((address) => ruleset.includes(address)), 'the stale ones are gone');
  t.ok(await ping(sandbox, containers[0]!.name, gateway4), 'the valid container still reaches its gateway');
  t.doesNotThrow(() => runner.check(list, attachments[0]!, results[0]!), 'and still passes CHECK');

  t.doesNotThrow(() => runner.status(list), 'STATUS succeeds');
  const status = await invoke(sandbox, 'trestle-bridge', { command: 'STATUS' }, pluginConfig(sandbox, list.plugins[0]!, '1.1.0'));
  t.equal(status.exitCode, 0, `STATUS exits 0 (${describe(status)})`);
  t.equal(status.stdout, '', 'and prints nothing');
});

t.test('GC without the list of valid attachments is refused and removes nothing', async (t) => {
  const sandbox = await Sandbox.create(t);
  const entry = bridgeEntry(sandbox);
  const container = await sandbox.addContainer();
  const added = await invoke(sandbox, 'trestle-bridge', call('ADD', sandbox.attachment(container)), pluginConfig(sandbox, entry, '1.1.0'));
  t.equal(added.exitCode, 0, describe(added));
  const outcome = await invoke(sandbox, 'trestle-bridge', { command: 'GC' }, pluginConfig(sandbox, entry, '1.1.0'));
  t.equal(outcome.json?.['code'], 7, describe(outcome));
  t.match(outcome.json?.['msg'], 'cni.dev/valid-attachments');
  t.equal(reservations(sandbox).length, 1, 'the address stays reserved');
  t.equal((await veths(sandbox)).length, 1, 'the veth stays');
});
