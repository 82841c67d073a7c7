import { findExecutable } from '../../src/util/exec.js';

// A program on PATH or in the sbin directories: runtimes and runc live in /usr/sbin,
// which a non-login root shell may not have on PATH.
export function findProgram(name: string): string | undefined {
  return findExecutable(name, [...(process.env['PATH'] ?? '').split(':'), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']);
}
