import { chmodSync, lstatSync, mkdirSync, statSync, unlinkSync } from 'node:fs';
import { connect, type Server } from 'node:net';
import { dirname } from 'node:path';

// Where the daemon's socket comes from: systemd's socket activation (LISTEN_FDS), or
// a path of its own. Only root may call it: the directory is 0700, the socket 0600.
export type SocketSource = { kind: 'activated'; fd: number } | { kind: 'path'; path: string };

// sd_listen_fds(3): the first passed socket is fd 3, meant for this very process.
export function activatedSocket(environment: NodeJS.ProcessEnv): SocketSource | undefined {
  if (environment['LISTEN_PID'] !== String(process.pid)) return undefined;
  const count = Number(environment['LISTEN_FDS'] ?? '0');
  return Number.isInteger(count) && count >= 1 ? { kind: 'activated', fd: 3 } : undefined;
}

export class AlreadyServedError extends Error {}

// What is at a socket path now: a listener that accepts, one that does not even
// accept within a second (stopped, or its backlog full), or none.
export function probeSocket(path: string): Promise<'accepts' | 'silent' | 'absent'> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.setTimeout(1_000);
    socket.once('connect', () => {
      socket.destroy();
      resolve('accepts');
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve('silent');
    });
    socket.once('error', () => resolve('absent'));
  });
}

// A socket file left by a daemon that died (kill -9, a crash) would make listen fail
// with EADDRINUSE forever: it is removed, unless a daemon still answers there.
async function clearStaleSocket(path: string): Promise<void> {
  let stat;
  try {
    stat = lstatSync(path);
  } catch {
    return;
  }
  if (!stat.isSocket()) throw new Error(`${path} exists and is not a socket: remove it or choose another path with TRESTLE_SOCKET`);
  // Accepting but silent is still a live listener: never take its socket away.
  if ((await probeSocket(path)) !== 'absent') throw new AlreadyServedError(`another Trestle daemon already answers on ${path}`);
  unlinkSync(path);
}

export async function listen(server: Server, source: SocketSource): Promise<void> {
  if (source.kind === 'path') {
    const dir = dirname(source.path);
    const created = mkdirSync(dir, { recursive: true, mode: 0o700 });
    // Our own directory is made root-only; a shared one (sticky, like /tmp) is left as
    // it is: the socket itself is 0600 either way.
    if (created !== undefined || (statSync(dir).mode & 0o1000) === 0) chmodSync(dir, 0o700);
    await clearStaleSocket(source.path);
  }
  // The socket is created 0600 from the start: no moment when others may connect.
  const previousMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(source.kind === 'activated' ? { fd: source.fd } : { path: source.path }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(previousMask);
  }
}

