// The daemon's life on a node: a stale socket left by a SIGKILL, a second daemon on a live
// socket, and SIGTERM with calls in flight. Real kernel, in sandbox namespaces.
import { chmodSync, existsSync, lstatSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { referenceBin, trestleBin } from '../../src/sandbox/sandbox.js';
import { defaultChain, hostPorts, leftovers, nothing, difference } from '../helpers/faults.js';
import { addChain, bareSandbox, cniEnv, delChain, describeReply, readLog, runClient, runDaemonToEnd, served, startDaemon, status, waitUntil } from '../helpers/daemon.js';

t.test('a stale socket and no daemon: calls fall back; a new daemon replaces the file and serves', async (t) => {
  const sandbox = await bareSandbox(t);
  const socket = sandbox.socketPath;
  const first = await startDaemon(t, sandbox);
  process.kill(first.pid, 'SIGKILL');
  await first.exited;
  t.ok(lstatSync(socket).isSocket(), 'the killed daemon left its socket file');

  const list = defaultChain(sandbox);
  const container = await sandbox.addContainer();
  const attachment = sandbox.attachment(container, { capabilities: { portMappings: hostPorts(8100) } });
  const added = await addChain(sandbox, list, attachment, { socket });
  t.ok(added.result, `ADD of the chain succeeds one-shot: ${added.failure ? describeReply(added.failure.reply) : 'ok'}`);
  t.equal((added.result?.['ips'] as unknown[] | undefined)?.length, 1, 'with an address');

  const second = await startDaemon(t, sandbox);
  t.not(second.pid, first.pid, 'a new daemon starts on the same path');
  t.match(readLog(second.log), /listening on/, 'and listens');
  const deleted = await delChain(sandbox, list, attachment, { socket });
  t.notOk(deleted.failure, `DEL through the new daemon succeeds${deleted.failure ? `: ${describeReply(deleted.failure.reply)}` : ''}`);
  t.equal(await served(socket), 2, 'the new daemon served both DELs (status served > 0)');
  t.same(difference(nothing, await leftovers(sandbox, list)), [], 'nothing is left');
});

t.test('a second daemon on a live socket refuses to start; the first keeps serving', async (t) => {
  const sandbox = await bareSandbox(t);
  const socket = sandbox.socketPath;
  const first = await startDaemon(t, sandbox);
  const second = await runDaemonToEnd(sandbox, socket, 15_000);
  t.equal(second.exitCode, 1, 'the second daemon exits 1');
  t.match(second.output, /already answers on .*trestled\.sock/, `and says why: ${second.output.trim()}`);
  const answer = await status(socket);
  t.equal(answer.running && answer.pid, first.pid, 'the first daemon still answers');
  const before = await served(socket);
  const version = await runClient(sandbox, { type: 'trestle-bridge', env: { CNI_COMMAND: 'VERSION', TRESTLE_SOCKET: socket }, input: '{"cniVersion":"1.0.0"}' });
  t.equal(version.exitCode, 0, 'a call succeeds');
  t.equal(await served(socket), before + 1, 'through the first daemon');
});

t.test('SIGTERM: new calls fall back, calls in flight finish, the daemon exits 0 and removes its socket', async (t) => {
  const sandbox = await bareSandbox(t);
  const socket = sandbox.socketPath;
  // The daemon runs Trestle's own plugins in-process, with no process per call to slow
  // down: the bridge delegates instead to an IPAM plugin of another type, which the
  // daemon runs as a process, as any runtime would. It waits 0.6 s on ADD, then runs the
  // reference host-local (whose store lives where Trestle's would), so the ADDs are
  // surely in flight at the signal. The reference speaks CNI 1.0.0 at most.
  const ipamDir = join(sandbox.dir, 'slow-ipam');
  mkdirSync(ipamDir, { recursive: true });
  writeFileSync(join(ipamDir, 'slow-host-local'), `#!/bin/sh\nif [ "$CNI_COMMAND" = ADD ]; then sleep 0.6; fi\nexec '${join(referenceBin, 'host-local')}'\n`);
  chmodSync(join(ipamDir, 'slow-host-local'), 0o755);
  const extra = { CNI_PATH: `${ipamDir}:${trestleBin}:${referenceBin}` };
  const daemon = await startDaemon(t, sandbox);
  const list = { ...defaultChain(sandbox, { ipam: { type: 'slow-host-local' } }), cniVersion: '1.0.0' };
  const containers = await Promise.all([1, 2, 3, 4].map(() => sandbox.addContainer()));
  const attachments = containers.map((container, index) => sandbox.attachment(container, { capabilities: { portMappings: hostPorts(8200 + index) } }));
  const bridge = list.plugins[0] as Record<string, unknown>;
  const inFlight = attachments.map((attachment) =>
    runClient(sandbox, { type: 'trestle-bridge', env: cniEnv('ADD', socket, attachment, extra), input: JSON.stringify({ ...bridge, cniVersion: list.cniVersion, name: list.name }) }),
  );
  await waitUntil('all four ADDs are in flight in the daemon', async () => {
    const answer = await status(socket);
    return answer.running && answer.inFlight === 4;
  });
  process.kill(daemon.pid, 'SIGTERM');
  await waitUntil('the daemon has seen SIGTERM', () => /SIGTERM/.test(readLog(daemon.log)), 5_000);

  const late = await sandbox.addContainer();
  const lateAttachment = sandbox.attachment(late, { capabilities: { portMappings: hostPorts(8299) } });
  const lateAdd = await addChain(sandbox, list, lateAttachment, { socket, extra });
  t.ok(lateAdd.result, `a call made after SIGTERM succeeds${lateAdd.failure ? `: ${describeReply(lateAdd.failure.reply)}` : ''}`);
  t.notMatch(readLog(daemon.log), new RegExp(`container=${late.id}\\b`), 'one-shot: the daemon did not serve it');

  const replies = await Promise.all(inFlight);
  for (const [index, reply] of replies.entries()) t.equal(reply.exitCode, 0, `ADD ${index + 1} in flight at the signal succeeded${reply.exitCode === 0 ? '' : `: ${describeReply(reply)}`}`);
  t.equal(await daemon.exited, 0, 'the daemon exits 0');
  t.notOk(existsSync(socket), 'and removed its socket');
  t.match(readLog(daemon.log), /stopped/, 'and said so');

  for (const attachment of [...attachments, lateAttachment]) {
    const deleted = await delChain(sandbox, list, attachment, { socket, extra });
    t.notOk(deleted.failure, `DEL one-shot succeeds${deleted.failure ? `: ${describeReply(deleted.failure.reply)}` : ''}`);
  }
  t.same(difference(nothing, await leftovers(sandbox, list)), [], 'nothing is left');
});
