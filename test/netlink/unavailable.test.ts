// A node where the native module cannot load: the plugins answer with one clear
// error instead of half-working, and what needs no kernel access still works.
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { repoRoot, Sandbox } from '../../src/sandbox/sandbox.js';

t.test('without koffi.node: ADD answers 103 naming the missing module, VERSION works, STATUS answers 50', async (t) => {
  const sandbox = await Sandbox.create(t);
  const container = await sandbox.addContainer();
  // A copy of the one-shot programs with everything but the native module.
  const tree = join(sandbox.dir, 'tree');
  mkdirSync(join(tree, 'bin'), { recursive: true });
  mkdirSync(join(tree, 'dist'));
  for (const name of ['trestle-node', 'package.json']) copyFileSync(join(repoRoot, 'bin', name), join(tree, 'bin', name));
  for (const name of ['launch.cjs', 'trestle-bridge.cjs', 'trestle-portmap.cjs']) copyFileSync(join(repoRoot, 'dist', name), join(tree, 'dist', name));
  const call = (plugin: string, command: string, config: Record<string, unknown>) =>
    sandbox.exec(sandbox.node, join(tree, 'bin', 'trestle-node'), [plugin], {
      input: JSON.stringify(config),
      reject: false,
      env: { CNI_COMMAND: command, CNI_CONTAINERID: container.id, CNI_NETNS: container.path, CNI_IFNAME: 'eth0', CNI_PATH: join(tree, 'bin'), PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
    });
  const bridge = {
    cniVersion: '1.1.0',
    name: 'nonative',
    type: 'trestle-bridge',
    bridge: 'trnn0',
    stateDir: sandbox.stateDir,
    ipam: { type: 'trestle-host-local', dataDir: sandbox.dataDir, ranges: [[{ subnet: '10.93.0.0/24' }]] },
  };
  const added = await call('trestle-bridge', 'ADD', bridge);
  t.equal(added.exitCode, 1, 'ADD fails');
  const error = JSON.parse(String(added.stdout)) as { code: number; msg: string };
  t.equal(error.code, 103, 'with code 103');
  t.match(error.msg, /native module koffi\.node is missing \(looked in .*\): reinstall Trestle/, 'naming the module and what to do');
  const version = await call('trestle-bridge', 'VERSION', { cniVersion: '1.1.0' });
  t.equal(version.exitCode, 0, 'VERSION needs no native module');
  const status = await call('trestle-portmap', 'STATUS', { cniVersion: '1.1.0', name: 'nonative', type: 'trestle-portmap', stateDir: sandbox.stateDir });
  t.equal(JSON.parse(String(status.stdout)).code, 50, 'portmap STATUS: 50, not available');
  t.equal((await sandbox.inNode('ip', ['-br', 'link', 'show', 'trnn0'], { reject: false })).exitCode, 1, 'no bridge was made');
  const store = join(sandbox.dataDir, 'nonative');
  t.strictSame(existsSync(store) ? readdirSync(store).filter((name) => name.startsWith('10.')) : [], [], 'no address stays reserved');
});
