import { realpathSync } from 'node:fs';
import { dirname, posix } from 'node:path';

// Directories a configuration names for Trestle's own files (ipam dataDir, bridge and
// portmap stateDir). They must be plain absolute paths outside the kernel's virtual
// file systems: under /proc a recursive mkdir never returns, and nothing Trestle
// writes belongs in /sys or /dev.
const forbiddenRoots = ['/proc', '/sys', '/dev'];
// Well under PATH_MAX, leaving room for the file names Trestle puts inside.
const maxDirectoryBytes = 1024;

function under(path: string, root: string): boolean {
  return path === root || path.startsWith(`${root}/`);
}

// The deepest existing ancestor, resolved: a symbolic link into /proc is refused too.
function resolvedExisting(path: string): string | undefined {
  for (let candidate = path; ; candidate = dirname(candidate)) {
    try {
      return realpathSync.native(candidate);
    } catch {
      if (candidate === '/') return undefined;
    }
  }
}

// Why `path` cannot be such a directory, or undefined when it can. A trailing "/" is
// allowed; any other difference from its normal form ("//", "/./", "/../") is not.
export function directoryProblem(path: string): string | undefined {
  if (path === '' || !path.startsWith('/')) return 'must be an absolute path';
  if (path.includes('\0')) return 'may not contain a NUL character';
  if (Buffer.byteLength(path, 'utf8') > maxDirectoryBytes) return `is longer than ${maxDirectoryBytes} bytes`;
  const trimmed = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  if (posix.normalize(trimmed) !== trimmed) return 'must be a normalized path (no "//", "." or ".." parts)';
  const resolved = resolvedExisting(trimmed);
  for (const root of forbiddenRoots) {
    if (under(trimmed, root) || (resolved !== undefined && under(resolved, root))) return `may not be under ${root}`;
  }
  return undefined;
}

// The directory as Trestle uses it (without a trailing "/").
export function normalizedDirectory(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}
