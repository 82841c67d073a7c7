import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { interfaceNameProblem } from '../util/ifname.js';
import { quote } from '../util/quote.js';
import { HostError } from './errors.js';

// /proc/sys/net belongs to the network namespace of the process that opens it, so
// these act on the namespace the plugin runs in; no process is needed.
// A value under /proc/sys, or undefined when the kernel has no such setting (a module
// not loaded, a device that is gone).
export function readSysctl(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function write(path: string, value: string): void {
  try {
    if (readFileSync(path, 'utf8').trim() === value) return;
    writeFileSync(path, value);
  } catch (error) {
    throw new HostError(`cannot set ${path} to ${value}: ${(error as Error).message}`, (error as Error).message);
  }
}

export function enableForwarding(family: 4 | 6): void {
  write(family === 4 ? '/proc/sys/net/ipv4/ip_forward' : '/proc/sys/net/ipv6/conf/all/forwarding', '1');
}

// The per-link directory only: a name that is no valid link name ("all" and
// "default" act on the whole namespace, "../x" leaves /proc) or no existing link
// never becomes a path.
function linkConfDirectory(device: string, family: 4 | 6 = 4): string {
  const problem = interfaceNameProblem(device);
  if (problem !== undefined) throw new HostError(`refusing the sysctls of ${quote(device)}: the name ${problem}`, 'invalid interface name');
  const directory = `/proc/sys/net/ipv${family}/conf/${device}`;
  let isDirectory = false;
  try {
    isDirectory = statSync(directory).isDirectory();
  } catch {
    // No such link in this namespace.
  }
  if (!isDirectory) throw new HostError(`cannot set the sysctls of ${quote(device)}: there is no such link`, 'no such link', true);
  return directory;
}

export function enableRouteLocalnet(device: string): void {
  write(`${linkConfDirectory(device)}/route_localnet`, '1');
}

// Turns IPv6 off on one link; nothing to do on a kernel without IPv6.
export function disableLinkIpv6(device: string): void {
  if (readSysctl('/proc/sys/net/ipv6/conf/default/disable_ipv6') === undefined) return;
  write(`${linkConfDirectory(device, 6)}/disable_ipv6`, '1');
}
