// The daemon keeps a store's lock for a moment after a call (src/util/lock.ts,
// keepLocksBetweenCalls): other processes still get their turn, and a daemon that
// stops gives every kept lock back.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { defaultChain, hostPorts, networkDir, firewallDir, leftovers, nothing, difference, sleep } from '../helpers/faults.js';
import { addChain, bareSandbox, delChain, describeReply, startDaemon } from '../helpers/daemon.js';

t.test('a kept lock: one-shot calls meanwhile succeed, it is given back when idle and when the daemon stops', async (t) => {
  const sandbox = await bareSandbox(t);
  const daemon = await startDaemon(t, sandbox);
  const list = defaultChain(sandbox);
  const ipamLock = join(networkDir(sandbox, list), 'trestle.lock');
  const firewallLock = join(firewallDir(sandbox), 'trestle.lock');

  const first = sandbox.attachment(await sandbox.addContainer(), { capabilities: { portMappings: hostPorts(8400) } });
  const added = await addChain(sandbox, list, first, { socket: sandbox.socketPath });
  t.ok(added.result, `ADD through the daemon${added.failure ? `: ${describeReply(added.failure.reply)}` : ''}`);
  // Right after the call the daemon still holds both locks: a one-shot call (no
  // daemon on its socket) waits its turn and succeeds.
  const second = sandbox.attachment(await sandbox.addContainer(), { capabilities: { portMappings: hostPorts(8410) } });
  const oneShot = await addChain(sandbox, list, second, { socket: join(sandbox.dir, 'none.sock') });
  t.ok(oneShot.result, `a one-shot ADD meanwhile succeeds${oneShot.failure ? `: ${describeReply(oneShot.failure.reply)}` : ''}`);
  await sleep(200);
  t.notOk(existsSync(ipamLock), 'an idle daemon has given the store lock back');
  t.notOk(existsSync(firewallLock), 'and the firewall lock');

  // Stopped right after a call: nothing is left locked.
  const third = sandbox.attachment(await sandbox.addContainer(), { capabilities: { portMappings: hostPorts(8420) } });
  t.ok((await addChain(sandbox, list, third, { socket: sandbox.socketPath })).result, 'another ADD through the daemon');
  process.kill(daemon.pid, 'SIGTERM');
  t.equal(await daemon.exited, 0, 'the daemon stops');
  t.notOk(existsSync(ipamLock) || existsSync(firewallLock), 'and left no lock behind');

  for (const attachment of [first, second, third]) {
    const deleted = await delChain(sandbox, list, attachment, { socket: sandbox.socketPath });
    t.notOk(deleted.failure, `DEL one-shot${deleted.failure ? `: ${describeReply(deleted.failure.reply)}` : ''}`);
  }
  t.same(difference(nothing, await leftovers(sandbox, list)), [], 'nothing is left');
});
