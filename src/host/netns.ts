import { statSync } from 'node:fs';

// A namespace given as a path (/run/netns/x, /proc/<pid>/ns/net...). Commands run in
// it through nsenter, which needs no name registered under /run/netns.
export function namespaceExists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

// The argument prefix that runs a program inside `netns` (or here when undefined).
export function inNamespace(netns: string | undefined, file: string, args: readonly string[]): [string, string[]] {
  if (netns === undefined) return [file, [...args]];
  return ['nsenter', [`--net=${netns}`, '--', file, ...args]];
}
