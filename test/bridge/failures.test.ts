// A failed ADD reports a CNI error and undoes every earlier step: no veth on the
// node, no address reserved. Bad input is refused with the spec's codes.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { bridgeEntry, bridgeName, call, describe, invoke, link, pluginConfig, reservations, resultAddresses, veths } from '../helpers/bridge.js';

const version = '1.0.0';

t.test('an ADD that fails midway leaves nothing behind', async (t) => {
  const sandbox = await Sandbox.create(t);
  const entry = bridgeEntry(sandbox, { dualStack: true });

  // The interface name is taken inside the container: the veth pair cannot be made.
  const taken = await sandbox.addContainer();
  await sandbox.exec(taken.name, 'ip', ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'squatter']);
  const clash = await invoke(sandbox, 'trestle-bridge', call('ADD', sandbox.attachment(taken)), pluginConfig(sandbox, entry, version));
  t.equal(clash.exitCode, 1, 'ADD fails when eth0 already exists in the container');
  t.equal(clash.json?.['code'], 103, 'as a failed host command');
  t.match(clash.json?.['msg'], /create veth pair veth[0-9a-f]+\/eth0: File exists/, 'naming the step and the kernel reason');
  t.strictSame(await veths(sandbox), [], 'no veth is left on the node');
  t.strictSame(reservations(sandbox), [], 'no address stays reserved');
  t.strictSame((await veths(sandbox, taken.name)).sort(), ['eth0', 'squatter'], "the container's own interfaces are untouched");

  // A route the kernel refuses, after the veth pair exists: the rollback deletes it.
  const unroutable = await sandbox.addContainer();
  const badRoute = bridgeEntry(sandbox, { dualStack: true, ipam: { routes: [{ dst: '192.0.2.0/24', gw: '10.99.0.1' }] } });
  const refused = await invoke(sandbox, 'trestle-bridge', call('ADD', sandbox.attachment(unroutable)), pluginConfig(sandbox, badRoute, version));
  t.equal(refused.exitCode, 1, 'ADD fails when a route cannot be added in the container');
  t.equal(refused.json?.['code'], 103, 'as a failed host command');
  t.match(refused.json?.['msg'], /add route 192\.0\.2\.0\/24 via 10\.99\.0\.1 on eth0/, 'naming the route');
  t.strictSame(await veths(sandbox), [], 'the veth created before the failure is deleted');
  t.strictSame(await veths(sandbox, unroutable.name), [], 'and so is its container end');
  t.strictSame(reservations(sandbox), [], 'the addresses are released');

  // The last step fails (the masquerade state cannot be written: stateDir is a file),
  // after the container is fully configured: everything before it is undone.
  const lastStep = await sandbox.addContainer();
  const blockedStateDir = join(sandbox.dir, 'state-is-a-file');
  writeFileSync(blockedStateDir, '');
  const masquerading = bridgeEntry(sandbox, { dualStack: true, bridge: { ipMasq: true, stateDir: blockedStateDir } });
  const unrecorded = await invoke(sandbox, 'trestle-bridge', call('ADD', sandbox.attachment(lastStep)), pluginConfig(sandbox, masquerading, version));
  t.equal(unrecorded.exitCode, 1, `ADD fails when the masquerade step fails (${describe(unrecorded)})`);
  t.strictSame(await veths(sandbox), [], 'the configured veth is deleted');
  t.strictSame(await veths(sandbox, lastStep.name), [], 'and so is its container end');
  t.strictSame(reservations(sandbox), [], 'the addresses are released');

  const healthy = await sandbox.addContainer();
  const outcome = await invoke(sandbox, 'trestle-bridge', call('ADD', sandbox.attachment(healthy)), pluginConfig(sandbox, entry, version));
  t.equal(outcome.exitCode, 0, `a following ADD succeeds (${describe(outcome)})`);
  t.strictSame(reservations(sandbox).sort(), resultAddresses(outcome.json).sort(), 'and holds the only reservations: nothing leaked');
});

t.test('ADD into a namespace that does not exist fails with code 3', async (t) => {
  const sandbox = await Sandbox.create(t);
  const attachment = { containerId: `ctr-${sandbox.id}-ghost`, netns: `/run/netns/trc-${sandbox.id}-ghost`, ifname: 'eth0' };
  const outcome = await invoke(sandbox, 'trestle-bridge', call('ADD', attachment), pluginConfig(sandbox, bridgeEntry(sandbox), version));
  t.equal(outcome.json?.['code'], 3, describe(outcome));
  t.match(outcome.json?.['msg'], attachment.netns, 'naming the namespace');
  const notNamespace = join(sandbox.dir, 'not-a-namespace');
  writeFileSync(notNamespace, '');
  const plainFile = await invoke(sandbox, 'trestle-bridge', call('ADD', { ...attachment, netns: notNamespace }), pluginConfig(sandbox, bridgeEntry(sandbox), version));
  t.equal(plainFile.json?.['code'], 3, `a file that is not a namespace: code 3 too (${describe(plainFile)})`);
  t.strictSame(reservations(sandbox), [], 'no address is reserved');
});

t.test('an interface that is not a bridge under the bridge name is a clear error', async (t) => {
  const sandbox = await Sandbox.create(t);
  await sandbox.inNode('ip', ['link', 'add', bridgeName, 'type', 'veth', 'peer', 'name', 'impostor-peer']);
  const container = await sandbox.addContainer();
  const outcome = await invoke(sandbox, 'trestle-bridge', call('ADD', sandbox.attachment(container)), pluginConfig(sandbox, bridgeEntry(sandbox), version));
  t.equal(outcome.json?.['code'], 7, describe(outcome));
  t.match(outcome.json?.['msg'], `${bridgeName} already exists and is not a bridge (it is a veth interface)`);
  t.strictSame((await veths(sandbox)).sort(), ['impostor-peer', bridgeName].sort(), 'no veth was added on the node');
  t.equal(await link(sandbox, container.name, 'eth0'), undefined, 'the container got no interface');
  t.strictSame(reservations(sandbox), [], 'no address stays reserved');
});

t.test('keys trestle-bridge does not implement are refused with code 2', async (t) => {
  const sandbox = await Sandbox.create(t);
  const container = await sandbox.addContainer();
  for (const [key, value] of [
    ['vlan', 100],
    ['macspoofchk', true],
  ] as const) {
    const entry = bridgeEntry(sandbox, { bridge: { [key]: value } });
    const outcome = await invoke(sandbox, 'trestle-bridge', call('ADD', sandbox.attachment(container)), pluginConfig(sandbox, entry, version));
    t.equal(outcome.json?.['code'], 2, `${key}: code 2 (${describe(outcome)})`);
    t.match(outcome.json?.['msg'], key, `${key}: the message names the key`);
  }
  t.strictSame(reservations(sandbox), [], 'no address was reserved');
  t.equal(await link(sandbox, sandbox.node, bridgeName), undefined, 'no bridge was created');
});
