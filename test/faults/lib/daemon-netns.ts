// Which network namespace a daemon and each of its threads are in, against the node's.
// A namespace bind-mounted under /run/netns does not name itself through readlink, but
// stat follows the mount to the nsfs inode, which is the number in "net:[N]".
import { readdirSync, readlinkSync, statSync } from 'node:fs';

export function namespaceLink(path: string): string {
  return `net:[${statSync(path).ino}]`;
}

// Every place the daemon `pid` is not in the namespace at `nodePath`: the process, then
// each thread ("thread 123 in net:[...]"); empty when all are in the node's.
export function outsideNode(pid: number, nodePath: string): string[] {
  const node = namespaceLink(nodePath);
  const problems: string[] = [];
  const process = readlinkSync(`/proc/${pid}/ns/net`);
  if (process !== node) problems.push(`process ${pid} in ${process}, the node is ${node}`);
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    let link: string;
    try {
      link = readlinkSync(`/proc/${pid}/task/${task}/ns/net`);
    } catch {
      // The thread ended between the listing and the read.
      continue;
    }
    if (link !== node) problems.push(`thread ${task} in ${link}, the node is ${node}`);
  }
  return problems;
}

export function threadCount(pid: number): number {
  return readdirSync(`/proc/${pid}/task`).length;
}
