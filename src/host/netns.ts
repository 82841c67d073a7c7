import { statfsSync } from 'node:fs';

// The file system type of namespace files (NSFS_MAGIC in linux/magic.h).
const nsfsMagic = 0x6e736673;

// A namespace given as a path (/run/netns/x, /proc/<pid>/ns/net...). Commands run in
// it through nsenter, which needs no name registered under /run/netns. A path that
// exists but is no namespace (a bind mount's file left behind after the unmount) is
// a namespace that is gone: DEL must still succeed there, and no command can enter it.
export function namespaceExists(path: string): boolean {
  try {
    return statfsSync(path).type === nsfsMagic;
  } catch {
    return false;
  }
}

// The argument prefix that runs a program inside `netns` (or here when undefined).
export function inNamespace(netns: string | undefined, file: string, args: readonly string[]): [string, string[]] {
  if (netns === undefined) return [file, [...args]];
  return ['nsenter', [`--net=${netns}`, '--', file, ...args]];
}
