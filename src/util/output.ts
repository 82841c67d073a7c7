import { writeSync } from 'node:fs';

// Writes straight to a file descriptor: touching process.stdout builds a stream (and
// loads Node's stream module), ~4 ms of a call that prints one line. A pipe the runtime
// has not drained yet answers EAGAIN; the write is then retried.
export function writeAll(fd: number, text: string): void {
  const bytes = Buffer.from(text);
  for (let offset = 0; offset < bytes.length; ) {
    try {
      offset += writeSync(fd, bytes, offset);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
      // A 1 ms pause: the event loop cannot drain a pipe we block on anyway.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}
