// An upgrade on a running node: a client of another build runs its call one-shot, and once
// the build installed beside the daemon changes, the daemon restarts onto it when idle. The
// daemon runs from a copy of bin/ and dist/ whose trestle.build the test rewrites (the
// repository's dist/ is shared).
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { defaultChain, hostPorts, leftovers, nothing, difference } from '../helpers/faults.js';
import {
  addChain,
  bareSandbox,
  copyTree,
  delChain,
  describeReply,
  endProcess,
  installedBuild,
  privateClient,
  readLog,
  served,
  startDaemon,
  status,
  waitUntil,
} from '../helpers/daemon.js';

t.test('a client of another build runs one-shot; the daemon then moves to the installed build', async (t) => {
  const sandbox = await bareSandbox(t);
  const socket = sandbox.socketPath;
  const tree = join(sandbox.dir, 'tree');
  const program = copyTree(tree);
  const oldBuild = installedBuild();
  const newBuild = oldBuild === '0123456789abcdef' ? 'fedcba9876543210' : '0123456789abcdef';
  const newClient = privateClient(join(sandbox.dir, 'new-client'), newBuild);
  const first = await startDaemon(t, sandbox, { program });
  // The replacement is started by the daemon itself, detached: ended here by the PID it reports.
  t.teardown(async () => {
    const answer = await status(socket, 500);
    if (answer.running && answer.pid !== first.pid) endProcess(answer.pid);
  });
  const before = await status(socket);
  t.equal(before.running && before.build, oldBuild, 'the daemon runs the build of its tree');

  const list = defaultChain(sandbox);
  const container = await sandbox.addContainer();
  const attachment = sandbox.attachment(container, { capabilities: { portMappings: hostPorts(8400) } });
  const added = await addChain(sandbox, list, attachment, { socket, binDir: newClient });
  t.ok(added.result, `ADD by a client of another build succeeds${added.failure ? `: ${describeReply(added.failure.reply)}` : ''}`);
  t.match((added.result?.['ips'] as Array<{ address: string }> | undefined)?.[0]?.address, /^10\.77\.\d+\.\d+\/16$/, 'with an address of the network');
  t.equal(await served(socket), 0, 'one-shot: the daemon served none of its calls');
  const unchanged = await status(socket);
  t.equal(unchanged.running && unchanged.pid, first.pid, 'with its own build still installed, the daemon stays');

  // The upgrade: the tree the daemon runs from now holds the new build.
  writeFileSync(join(tree, 'dist', 'trestle.build.tmp'), `${newBuild}\n`);
  renameSync(join(tree, 'dist', 'trestle.build.tmp'), join(tree, 'dist', 'trestle.build'));
  const deleted = await delChain(sandbox, list, attachment, { socket, binDir: newClient });
  t.notOk(deleted.failure, `DEL by the new client succeeds meanwhile${deleted.failure ? `: ${describeReply(deleted.failure.reply)}` : ''}`);
  t.equal(await first.exited, 0, 'the old daemon exits 0 once idle');
  await waitUntil('a daemon of the new build answers', async () => {
    const answer = await status(socket, 500);
    return answer.running && answer.build === newBuild;
  });
  const after = await status(socket);
  t.not(after.running && after.pid, first.pid, `a new daemon (pid ${after.running ? after.pid : '-'}) answers`);
  t.match(readLog(first.log), /restarting once idle/, 'the old one said why it left');
  // The new daemon may have served the DEL's last call already.
  const base = await served(socket);

  const again = await addChain(sandbox, list, attachment, { socket, binDir: newClient });
  t.ok(again.result, `ADD by the new client succeeds${again.failure ? `: ${describeReply(again.failure.reply)}` : ''}`);
  t.equal(await served(socket), base + list.plugins.length, 'served by the new daemon');
  const old = await delChain(sandbox, list, attachment, { socket });
  t.notOk(old.failure, `DEL by a client of the old build succeeds one-shot${old.failure ? `: ${describeReply(old.failure.reply)}` : ''}`);
  t.equal(await served(socket), base + list.plugins.length, 'the new daemon did not serve the old client');
  const still = await status(socket);
  t.equal(still.running && still.pid, after.running && after.pid, 'and stays: it runs the installed build');
  t.same(difference(nothing, await leftovers(sandbox, list)), [], 'nothing is left');
});
