import { closeSync, fstatSync, openSync, statfsSync } from 'node:fs';
import { libc } from './native/libc.js';

// The file system type of namespace files (NSFS_MAGIC in linux/magic.h).
const nsfsMagic = 0x6e736673;

const NS_GET_NSTYPE = 0xb703;
const CLONE_NEWNET = 0x40000000;

// The inode that identifies the network namespace a path names (/proc/<pid>/ns/net,
// or a bind mount of one such as /run/netns/NAME), or undefined when it names none.
// statfs first: anything but nsfs is no namespace; then the kernel says which type it
// is. Constant cost, where reading the mount table grew with every container's mount.
function networkNamespaceInode(path: string): number | undefined {
  let fd: number;
  try {
    if (statfsSync(path).type !== nsfsMagic) return undefined;
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    return libc().ioctl(fd, NS_GET_NSTYPE) === CLONE_NEWNET ? fstatSync(fd).ino : undefined;
  } finally {
    closeSync(fd);
  }
}

// A namespace given as a path (/run/netns/x, /proc/<pid>/ns/net...). A path that
// exists but is no namespace (a bind mount's file left behind after the unmount) is
// a namespace that is gone: DEL must still succeed there, and no command can enter it.
// Only a network namespace counts: /proc/self/ns/mnt is a namespace file too.
export function namespaceExists(path: string): boolean {
  return networkNamespaceInode(path) !== undefined;
}

// The namespace this process runs in, once: a thread that enters another namespace
// (socketIn) returns before anything else runs, or the process ends.
let ownNamespace: number | undefined;

// What `path` names: the network namespace this process runs in (the node's, for a
// plugin: ADD, CHECK and DEL must never configure it as a container's), another one,
// or none.
export function namespaceKind(path: string): 'own' | 'other' | 'none' {
  const inode = networkNamespaceInode(path);
  if (inode === undefined) return 'none';
  ownNamespace ??= networkNamespaceInode('/proc/thread-self/ns/net');
  return inode === ownNamespace ? 'own' : 'other';
}

export function isCurrentNetworkNamespace(path: string): boolean {
  return namespaceKind(path) === 'own';
}
