import { mkdirSync } from 'node:fs';
import lockfile from 'proper-lockfile';

// A directory lock between processes (proper-lockfile: mkdir, and an mtime refreshed
// every second while held). A holder that was killed stops refreshing it, and after
// `staleMs` the next caller takes the lock over: a dead holder costs at most ~2 s,
// never an error. The kernel's flock would cost nothing, but Node has no flock.
const staleMs = 2_000;
// Long enough to outlast a dead holder several times over, short enough that the
// runtime hears "try again later" well before its own timeout.
const maxWaitMs = 8_000;

export class LockTimeoutError extends Error {
  constructor(readonly lockPath: string) {
    super(`${lockPath} is held by another live process; gave up after ${maxWaitMs / 1000} s`);
    this.name = 'LockTimeoutError';
  }
}

// Callers in this process wait for each other here, in order, instead of polling the
// lock directory with back-off: a resident service runs many calls on one store at
// once, and polling would make them take turns slowly.
const queues = new Map<string, Promise<unknown>>();

export function withDirectoryLock<T>(directory: string, lockPath: string, work: () => T | Promise<T>): Promise<T> {
  const previous = queues.get(lockPath) ?? Promise.resolve();
  const result = previous.then(
    () => withFileLock(directory, lockPath, work),
    () => withFileLock(directory, lockPath, work),
  );
  const tail = result.catch(() => undefined);
  queues.set(lockPath, tail);
  void tail.then(() => {
    if (queues.get(lockPath) === tail) queues.delete(lockPath);
  });
  return result;
}

async function withFileLock<T>(directory: string, lockPath: string, work: () => T | Promise<T>): Promise<T> {
  mkdirSync(directory, { recursive: true, mode: 0o755 });
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(directory, {
      lockfilePath: lockPath,
      realpath: false,
      stale: staleMs,
      update: staleMs / 2,
      retries: { retries: 10_000, minTimeout: 2, maxTimeout: 50, factor: 1.3, randomize: true, maxRetryTime: maxWaitMs },
      // A holder whose refresh was late (a blocked event loop) loses the lock to a
      // waiter. The default answer, an exception thrown from a timer, would kill the
      // process half-way; the work under these locks is written to survive a second
      // holder (exclusive creates, idempotent element changes).
      onCompromised: () => undefined,
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOCKED') throw new LockTimeoutError(lockPath);
    throw error;
  }
  try {
    return await work();
  } finally {
    await release().catch(() => undefined);
  }
}
