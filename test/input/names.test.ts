// Names that are valid but read specially by `ip` (keywords, templates) and long
// identifiers, through trestle-bridge on the real kernel in a sandbox.
import t, { type Test } from 'tap';
import { namespaceExists, isCurrentNetworkNamespace } from '../../src/host/netns.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { bridgeEntry, bridgeName, call, describe, invoke, link, links, pluginConfig, reservations, resultHostVeth, veths, type Json } from '../helpers/bridge.js';

const version = '1.0.0';

// ADD, CHECK and DEL of one attachment; afterwards no veth, reservation or container
// interface may be left.
async function roundTrip(t: Test, sandbox: Sandbox, entry: Json, options: { ifname?: string; containerId?: string } = {}): Promise<Json | undefined> {
  const container = await sandbox.addContainer();
  const attachment = sandbox.attachment(container, { ifname: options.ifname ?? 'eth0', containerId: options.containerId ?? container.id });
  const config = pluginConfig(sandbox, entry, version);
  const added = await invoke(sandbox, 'trestle-bridge', call('ADD', attachment), config);
  t.equal(added.exitCode, 0, `ADD: ${describe(added)}`);
  const inside = await link(sandbox, container.name, attachment.ifname);
  t.ok(inside?.addr_info.some((entry) => entry.family === 'inet'), `the container has ${attachment.ifname} with an address`);
  const checked = await invoke(sandbox, 'trestle-bridge', call('CHECK', attachment), { ...config, prevResult: added.json });
  t.equal(checked.exitCode, 0, `CHECK: ${describe(checked)}`);
  const deleted = await invoke(sandbox, 'trestle-bridge', call('DEL', attachment), { ...config, prevResult: added.json });
  t.equal(deleted.exitCode, 0, `DEL: ${describe(deleted)}`);
  t.equal(await link(sandbox, container.name, attachment.ifname), undefined, 'the container interface is gone');
  return added.json;
}

async function nothingLeft(t: Test, sandbox: Sandbox): Promise<void> {
  t.strictSame(await veths(sandbox), [], 'no veth left on the node');
  t.strictSame(reservations(sandbox), [], 'no address left reserved');
}

t.test('CNI_IFNAME may be an ip keyword', async (t) => {
  const sandbox = await Sandbox.create(t);
  for (const ifname of ['up', 'a', 'dev', 'mtu', 'name', 'type', 'help', 'down', 'all0']) {
    await t.test(ifname, async (t) => {
      await roundTrip(t, sandbox, bridgeEntry(sandbox), { ifname });
    });
  }
  await nothingLeft(t, sandbox);
});

t.test('"bridge" may be an ip keyword', async (t) => {
  const sandbox = await Sandbox.create(t);
  const before = (await links(sandbox, sandbox.node)).map((entry) => entry.ifname);
  for (const bridge of ['up', 'name']) {
    await t.test(bridge, async (t) => {
      const result = await roundTrip(t, sandbox, bridgeEntry(sandbox, { bridge: { bridge }, ipam: { ranges: [[{ subnet: bridge === 'up' ? '10.88.0.0/24' : '10.89.0.0/24' }]] } }));
      t.equal(result?.['interfaces']?.[0]?.['name'], bridge, 'the result names the bridge');
      t.equal((await link(sandbox, sandbox.node, bridge))?.linkinfo?.info_kind, 'bridge', `a bridge called ${bridge} exists`);
    });
  }
  const after = (await links(sandbox, sandbox.node)).map((entry) => entry.ifname).sort();
  t.strictSame(after, [...before, 'up', 'name'].sort(), 'only the two bridges were added (no "bridge0")');
  await nothingLeft(t, sandbox);
});

t.test('a bridge name with "%" is refused before the kernel makes a templated name of it', async (t) => {
  const sandbox = await Sandbox.create(t);
  const container = await sandbox.addContainer();
  const before = (await links(sandbox, sandbox.node)).map((entry) => entry.ifname);
  for (const bridge of ['fz%d', 'br%s', 'ééééééééé']) {
    const outcome = await invoke(sandbox, 'trestle-bridge', call('ADD', sandbox.attachment(container)), pluginConfig(sandbox, bridgeEntry(sandbox, { bridge: { bridge } }), version));
    t.equal(outcome.json?.['code'], 7, `${JSON.stringify(bridge)}: ${describe(outcome)}`);
    t.notMatch(outcome.stdout + outcome.stderr, /\n\s+at /, 'no stack trace');
  }
  const outcome = await invoke(sandbox, 'trestle-bridge', call('ADD', sandbox.attachment(container), { ifname: 'e%d' }), pluginConfig(sandbox, bridgeEntry(sandbox), version));
  t.equal(outcome.json?.['code'], 4, `CNI_IFNAME "e%d": ${describe(outcome)}`);
  t.strictSame((await links(sandbox, sandbox.node)).map((entry) => entry.ifname), before, 'no link was created (no fz0)');
  t.strictSame(reservations(sandbox), [], 'and no address reserved');
});

t.test('a 255-character container ID: ADD, CHECK, GC and DEL', async (t) => {
  const sandbox = await Sandbox.create(t);
  const containerId = `${sandbox.id}-${'c'.repeat(255 - sandbox.id.length - 1)}`;
  t.equal(containerId.length, 255);
  const entry = bridgeEntry(sandbox);
  const container = await sandbox.addContainer();
  const attachment = sandbox.attachment(container, { containerId });
  const config = pluginConfig(sandbox, entry, '1.1.0');
  const added = await invoke(sandbox, 'trestle-bridge', call('ADD', attachment), config);
  t.equal(added.exitCode, 0, `ADD: ${describe(added)}`);
  const hostVeth = resultHostVeth(added.json);
  const aliasOutcome = await sandbox.inNode('ip', ['-j', 'link', 'show', 'dev', hostVeth]);
  const alias = String((JSON.parse(String(aliasOutcome.stdout)) as Json[])[0]?.['ifalias']);
  t.ok(alias.startsWith(`trestle/net-${sandbox.id}/${containerId.slice(0, 12)}+`), `the host veth carries a bounded owner label: ${alias}`);
  const checked = await invoke(sandbox, 'trestle-bridge', call('CHECK', attachment), { ...config, prevResult: added.json });
  t.equal(checked.exitCode, 0, `CHECK: ${describe(checked)}`);
  const kept = await invoke(sandbox, 'trestle-bridge', { command: 'GC' }, { ...config, 'cni.dev/valid-attachments': [{ containerID: containerId, ifname: 'eth0' }] });
  t.equal(kept.exitCode, 0, `GC: ${describe(kept)}`);
  t.strictSame(await veths(sandbox), [hostVeth], 'GC keeps the veth of the valid attachment');
  const collected = await invoke(sandbox, 'trestle-bridge', { command: 'GC' }, { ...config, 'cni.dev/valid-attachments': [] });
  t.equal(collected.exitCode, 0, `GC: ${describe(collected)}`);
  await nothingLeft(t, sandbox);
  const deleted = await invoke(sandbox, 'trestle-bridge', call('DEL', attachment), { ...config, prevResult: added.json });
  t.equal(deleted.exitCode, 0, `DEL after GC: ${describe(deleted)}`);
});

t.test('CNI_NETNS must be a network namespace, and the node is told apart from a container', async (t) => {
  const sandbox = await Sandbox.create(t);
  const container = await sandbox.addContainer();
  // Read-only checks of this process's own namespace files.
  t.ok(namespaceExists('/proc/self/ns/net'), 'a network namespace');
  t.notOk(namespaceExists('/proc/self/ns/mnt'), 'a mount namespace is not one');
  t.notOk(namespaceExists('/proc/self/ns/uts'), 'nor a UTS namespace');
  t.notOk(namespaceExists('/etc/hostname'), 'nor a plain file');
  t.notOk(namespaceExists('/nonexistent/ns'), 'nor a missing path');
  t.ok(namespaceExists(container.path), "the sandbox container's namespace");
  t.ok(isCurrentNetworkNamespace('/proc/self/ns/net'), 'this process runs in its own namespace');
  t.notOk(isCurrentNetworkNamespace(container.path), 'a container namespace is not the current one');
  t.notOk(isCurrentNetworkNamespace('/proc/self/ns/mnt'), 'a mount namespace is never the current network namespace');

  const outcome = await invoke(sandbox, 'trestle-bridge', call('ADD', sandbox.attachment(container), { netns: '/proc/self/ns/mnt' }), pluginConfig(sandbox, bridgeEntry(sandbox), version));
  t.not(outcome.exitCode, 0, `ADD into a mount namespace fails: ${describe(outcome)}`);
  t.ok([3, 4].includes(Number(outcome.json?.['code'])), 'with code 3 or 4');
  await nothingLeft(t, sandbox);
  t.equal(await link(sandbox, sandbox.node, bridgeName), undefined, 'and no bridge was made');
});
