// Waiters that take over a stale lock at once (a daemon killed holding it, then many
// one-shot calls) race in proper-lockfile: one removes the lock directory another has
// just made, before that one's first look at it (its mtime probe). The caller whose
// lock vanished must wait and try again, not fail: CI once saw a DEL answer
// "I/O failure: utime .../trestle.lock: ENOENT" there. Reproduced on the real file
// system: strace holds the plugin right after each mkdir, and the test removes the
// lock directory once, in that window, as the other waiter would.
import { existsSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { defaultChain, describeOutcome, hostLocalInput, networkDir, reservationFiles, resultAddress, runPlugin, sleep, startPlugin, syscallDelay } from '../helpers/faults.js';

t.test('a lock removed between its mkdir and its first look: the call takes it again and succeeds', async (t) => {
  const sandbox = await Sandbox.create(t);
  const list = defaultChain(sandbox);
  const lock = join(networkDir(sandbox, list), 'trestle.lock');
  const container = await sandbox.addContainer();
  const attachment = sandbox.attachment(container);
  const running = startPlugin(sandbox, { type: 'trestle-host-local', command: 'ADD', config: hostLocalInput(list), attachment }, { strace: syscallDelay('mkdir,mkdirat', 'delay_exit', 400_000) });
  let finished = false;
  void running.outcome.then(() => {
    finished = true;
  });
  let removed = false;
  while (!finished && !removed) {
    if (existsSync(lock)) {
      rmdirSync(lock);
      removed = true;
    }
    await sleep(2);
  }
  t.ok(removed, 'the lock directory was removed while the plugin was held right after making it');
  const outcome = await running.outcome;
  t.equal(outcome.exitCode, 0, `the ADD succeeds (${describeOutcome(outcome)})`);
  const address = resultAddress(outcome.json);
  t.strictSame(reservationFiles(sandbox, list), [address], `with one reservation, ${address}`);
  t.notOk(existsSync(lock), 'and gives the lock back');

  const deleted = await runPlugin(sandbox, { type: 'trestle-host-local', command: 'DEL', config: hostLocalInput(list), attachment });
  t.equal(deleted.exitCode, 0, `DEL succeeds (${describeOutcome(deleted)})`);
  t.strictSame(reservationFiles(sandbox, list), [], 'and releases it');
});
