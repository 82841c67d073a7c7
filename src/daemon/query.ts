import { request } from 'node:http';
import type { DaemonStatus } from './server.js';
import { socketPath } from './wire.js';

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
