import { readFileSync, readlinkSync, statSync, statfsSync } from 'node:fs';

// The file system type of namespace files (NSFS_MAGIC in linux/magic.h).
const nsfsMagic = 0x6e736673;

// The identity of the namespace a path names ("net:[4026532281]"), or undefined when
// it names none. statfs first: anything but nsfs is no namespace. A /proc/<pid>/ns/<type>
// link names its namespace itself; a bind mount of one (/run/netns/NAME, as runtimes
// make them) does not, but the mount table records what it holds, by inode.
function namespaceIdentity(path: string): string | undefined {
  try {
    if (statfsSync(path).type !== nsfsMagic) return undefined;
    const link = readLink(path);
    if (link !== undefined && identityPattern.test(link)) return link;
    const inode = String(statSync(path).ino);
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const root = line.split(' ', 5)[3];
      const match = root === undefined ? null : identityPattern.exec(root);
      if (match && match[2] === inode) return root;
    }
    return undefined;
  } catch {
    return undefined;
  }
}

const identityPattern = /^([a-z_]+):\[(\d+)\]$/;

function readLink(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

// A namespace given as a path (/run/netns/x, /proc/<pid>/ns/net...). A path that
// exists but is no namespace (a bind mount's file left behind after the unmount) is
// a namespace that is gone: DEL must still succeed there, and no command can enter it.
// Only a network namespace counts: /proc/self/ns/mnt is a namespace file too.
export function namespaceExists(path: string): boolean {
  return namespaceIdentity(path)?.startsWith('net:[') ?? false;
}

// True when `path` is the network namespace this process runs in (the node's, for a
// plugin): ADD, CHECK and DEL must never configure it as a container's.
export function isCurrentNetworkNamespace(path: string): boolean {
  const identity = namespaceIdentity(path);
  return identity !== undefined && identity.startsWith('net:[') && identity === namespaceIdentity('/proc/self/ns/net');
}
