// The resident service's wire format (one HTTP request per call over a unix socket),
// shared with the native client (client/trestle-client.c, which documents it too).
// Kept to what C writes and reads without a parser: the environment as NUL-ended
// KEY=VALUE entries followed by the raw stdin bytes; the answer as stdout then
// stderr, split by a length header.
import type { Environment } from '../cni/env.js';

export const defaultSocketPath = '/run/trestle/trestled.sock';
export const socketVariable = 'TRESTLE_SOCKET';

export const header = {
  plugin: 'x-trestle-plugin',
  build: 'x-trestle-build',
  environmentLength: 'x-trestle-env-length',
  exit: 'X-Trestle-Exit',
  stdoutLength: 'X-Trestle-Stdout-Length',
} as const;

export function socketPath(environment: Environment): string {
  const chosen = environment[socketVariable];
  return chosen !== undefined && chosen !== '' ? chosen : defaultSocketPath;
}

export interface DecodedCall {
  environment: Record<string, string>;
  stdin: Buffer;
}

export class WireError extends Error {}

export function decodeCall(body: Buffer, environmentLength: number): DecodedCall {
  if (!Number.isInteger(environmentLength) || environmentLength < 0 || environmentLength > body.length) {
    throw new WireError(`environment length ${environmentLength} does not fit a body of ${body.length} bytes`);
  }
  // Decoded at once and split: NUL never occurs inside a UTF-8 sequence, and one
  // decode per entry cost ~20 us a call.
  const entries = body.toString('utf8', 0, environmentLength).split('\0');
  if (entries.pop() !== '') throw new WireError('an environment entry is not NUL-terminated');
  const environment: Record<string, string> = {};
  for (const entry of entries) {
    const equals = entry.indexOf('=');
    // An entry without "=" is not a variable (execve allows one); nothing reads it.
    if (equals > 0) environment[entry.slice(0, equals)] = entry.slice(equals + 1);
  }
  return { environment, stdin: body.subarray(environmentLength) };
}

export function encodeCall(environment: Environment, stdin: Buffer): { body: Buffer; environmentLength: number } {
  const entries = Object.entries(environment)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([key, value]) => `${key}=${value}\0`)
    .join('');
  const env = Buffer.from(entries, 'utf8');
  return { body: Buffer.concat([env, stdin]), environmentLength: env.length };
}
