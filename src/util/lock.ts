import { mkdirSync, realpathSync, rmdirSync, statSync, utimesSync } from 'node:fs';
import lockfile from 'proper-lockfile';
import { KeyedQueue } from './keyed-queue.js';

// A directory lock between processes (proper-lockfile: mkdir, and an mtime refreshed
// every second while held). A holder that was killed stops refreshing it, and after
// `staleMs` the next caller takes the lock over: a dead holder costs at most ~2 s,
// never an error. The kernel's flock would cost nothing, but Node has no flock.
const staleMs = 2_000;
// How long one live holder may keep the lock before a waiter gives up ("try again
// later"): long enough to outlast a dead holder several times over. Waiting behind many
// holders in turn (a burst of calls on a node) is progress and goes on, up to the
// overall bound, well before a runtime's own timeout.
const maxHoldMs = 8_000;
const maxWaitMs = 60_000;

export class LockTimeoutError extends Error {
  constructor(readonly lockPath: string, waitedMs: number) {
    super(`${lockPath} is held by another live process; gave up after ${Math.round(waitedMs / 1000)} s`);
    this.name = 'LockTimeoutError';
  }
}

// Which holder has the lock now: each takes it with a new directory.
function holderOf(lockPath: string): string | undefined {
  try {
    const stat = statSync(lockPath);
    return `${stat.ino}:${stat.birthtimeMs}`;
  } catch {
    return undefined;
  }
}

// The file system calls proper-lockfile's synchronous form makes, and no others: it
// copies the object it is given on every lock, and a copy of the whole fs module reads
// its lazy getters (ReadStream, promises), which load Node's stream modules on the
// first lock: 4.4 ms of a one-shot call, or of a daemon's first, that nothing else
// here needs (measured).
const lockFs = { mkdirSync, realpathSync, rmdirSync, statSync, utimesSync };

// The lock is someone else's: held, or gone from under us between our mkdir and
// proper-lockfile's first look at it (its utimes and stat). Waiters that take over a
// stale lock at once race there: one removes the lock another has just made (seen
// with 25 DELs after a daemon was killed holding the firewall lock; the DEL failed
// with "utime ...: ENOENT"). Either way, wait and try again.
function takenMeanwhile(error: NodeJS.ErrnoException, lockPath: string): boolean {
  if (error.code === 'ELOCKED') return true;
  return error.code === 'ENOENT' && error.path === lockPath && (error.syscall === 'utime' || error.syscall === 'stat');
}

async function acquire(directory: string, lockPath: string): Promise<() => Promise<void>> {
  const started = Date.now();
  let holder: string | undefined;
  let holderSince = started;
  let delayMs = 2;
  for (;;) {
    try {
      // The synchronous form: a mkdir, and an rmdir to release, in this thread rather
      // than two round trips through libuv's pool each (~0.3 ms of every locked call
      // in the daemon, measured). Waiting for a held lock stays asynchronous, below.
      const release = lockfile.lockSync(directory, {
        lockfilePath: lockPath,
        fs: lockFs,
        realpath: false,
        stale: staleMs,
        update: staleMs / 2,
        // A holder whose refresh was late (a blocked event loop) loses the lock to a
        // waiter. The default answer, an exception thrown from a timer, would kill the
        // process half-way; the work under these locks is written to survive a second
        // holder (exclusive creates, idempotent element changes).
        onCompromised: () => undefined,
      });
      return async () => release();
    } catch (error) {
      if (!takenMeanwhile(error as NodeJS.ErrnoException, lockPath)) throw error;
    }
    const now = Date.now();
    const current = holderOf(lockPath);
    if (current !== holder) {
      holder = current;
      holderSince = now;
    } else if (now - holderSince > maxHoldMs || now - started > maxWaitMs) {
      throw new LockTimeoutError(lockPath, now - started);
    }
    await new Promise((resolve) => setTimeout(resolve, delayMs * (0.5 + Math.random())));
    delayMs = Math.min(delayMs * 1.3, 50);
  }
}

// Callers in this process wait for each other here, in order, instead of polling the
// lock directory with back-off: a resident service runs many calls on one store at
// once, and polling would make them take turns slowly.
const waiting = new KeyedQueue();

export function withDirectoryLock<T>(directory: string, lockPath: string, work: () => T | Promise<T>): Promise<T> {
  return waiting.run(lockPath, () => withFileLock(directory, lockPath, work));
}

// A resident service keeps a lock for a moment after each use: the next call on the
// same store (the runtime's next plugin of the chain, the next container), typically
// a few milliseconds later, then goes on without taking it again. Taking and giving
// back a lock is a mkdir and an rmdir, and rmdir alone costs 0.25-0.5 ms on these
// machines (tmpfs included). Another process waits at most this much longer; a daemon
// killed meanwhile costs the next holder the same 2 s as a holder killed mid-work.
let lingerMs = 0;

export function keepLocksBetweenCalls(ms: number): void {
  lingerMs = ms;
}

interface HeldLock {
  release: () => Promise<void>;
  timer: NodeJS.Timeout | undefined;
}

const held = new Map<string, HeldLock>();

function giveBack(lockPath: string, lock: HeldLock): Promise<void> {
  clearTimeout(lock.timer);
  if (held.get(lockPath) === lock) held.delete(lockPath);
  return lock.release().catch(() => undefined);
}

// Every lock still kept, given back now (a daemon that stops).
export async function releaseKeptLocks(): Promise<void> {
  await Promise.all([...held].map(([lockPath, lock]) => giveBack(lockPath, lock)));
}

async function withFileLock<T>(directory: string, lockPath: string, work: () => T | Promise<T>): Promise<T> {
  let lock = held.get(lockPath);
  if (lock) {
    clearTimeout(lock.timer);
    lock.timer = undefined;
  } else {
    mkdirSync(directory, { recursive: true, mode: 0o755 });
    lock = { release: await acquire(directory, lockPath), timer: undefined };
    held.set(lockPath, lock);
  }
  try {
    return await work();
  } finally {
    const kept = lock;
    if (lingerMs === 0) await giveBack(lockPath, kept);
    else {
      kept.timer = setTimeout(() => void giveBack(lockPath, kept), lingerMs);
      kept.timer.unref();
    }
  }
}
