import { existsSync } from 'node:fs';

// Whether a link of this name exists in the calling process's network namespace,
// without starting `ip`: /proc/sys/net belongs to the namespace of the process that
// reads it (unlike /sys/class/net, which shows the namespace that mounted /sys).
// Names that could step outside the directory are never links.
export function linkPresent(name: string): boolean {
  if (name === '' || name === '.' || name === '..' || name === 'all' || name === 'default' || name.includes('/') || Buffer.byteLength(name) > 15) return false;
  return existsSync(`/proc/sys/net/ipv4/conf/${name}`) || existsSync(`/proc/sys/net/ipv6/conf/${name}`);
}
