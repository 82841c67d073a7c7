// `trestle daemon`: the resident service the plugin executables forward to, and
// `trestle daemon status`. The service is an accelerator: with none running, the
// executables do the same work one-shot.
import { request } from 'node:http';
import { dirname } from 'node:path';
import { isSea } from 'node:sea';
import packageJson from '../../package.json' with { type: 'json' };
import { activatedSocket, AlreadyServedError } from '../daemon/listener.js';
import { Daemon, type DaemonStatus } from '../daemon/server.js';
import { socketPath } from '../daemon/wire.js';

function log(line: string): void {
  process.stderr.write(`trestled: ${line}\n`);
}

// The directory of the running bundle (dist/, or the installed library directory);
// a single executable carries its bundle inside, and its build file sits beside it.
function bundleDirectory(): string {
  return isSea() || typeof __dirname !== 'string' ? dirname(process.execPath) : __dirname;
}

export async function runDaemon(): Promise<number> {
  const source = activatedSocket(process.env) ?? { kind: 'path' as const, path: socketPath(process.env) };
  const daemon = new Daemon({ source, bundleDir: bundleDirectory(), version: packageJson.version, log });
  try {
    await daemon.start();
  } catch (error) {
    log(error instanceof AlreadyServedError ? `${error.message}: not starting a second one` : `cannot listen: ${(error as Error).message}`);
    return 1;
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log(`${signal}: no new calls; finishing those in flight`);
      void daemon.stop().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  log('stopped');
  return 0;
}

export type DaemonAnswer = { running: false; socket: string; reason: string } | (DaemonStatus & { socket: string });

// What the daemon on this node says of itself, or why none answers.
export function queryDaemon(path = socketPath(process.env), timeoutMs = 2_000): Promise<DaemonAnswer> {
  return new Promise((resolve) => {
    const call = request({ socketPath: path, path: '/v1/status', method: 'GET', timeout: timeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        try {
          resolve({ ...(JSON.parse(Buffer.concat(chunks).toString('utf8')) as DaemonStatus), socket: path });
        } catch {
          resolve({ running: false, socket: path, reason: 'the socket answered, but not as a Trestle daemon' });
        }
      });
    });
    call.on('timeout', () => {
      call.destroy();
      resolve({ running: false, socket: path, reason: `no answer within ${timeoutMs} ms (stopped or overloaded)` });
    });
    call.on('error', (error: NodeJS.ErrnoException) => {
      const reason = error.code === 'ENOENT' ? 'no socket' : error.code === 'ECONNREFUSED' ? 'nothing listens (a stale socket)' : error.code ?? error.message;
      resolve({ running: false, socket: path, reason });
    });
    call.end();
  });
}
