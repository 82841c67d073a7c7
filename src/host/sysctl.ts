import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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

function cannotSet(path: string, value: string, error: unknown): HostError {
  return new HostError(`cannot set ${path} to ${value}: ${(error as Error).message}`, (error as Error).message);
}

function write(path: string, value: string): void {
  try {
    if (readFileSync(path, 'utf8').trim() === value) return;
    writeFileSync(path, value);
  } catch (error) {
    throw cannotSet(path, value, error);
  }
}

export function enableForwarding(family: 4 | 6): void {
  write(family === 4 ? '/proc/sys/net/ipv4/ip_forward' : '/proc/sys/net/ipv6/conf/all/forwarding', '1');
}

// A name that is no valid link name ("all" and "default" act on the whole namespace,
// "../x" leaves /proc) never becomes a path.
function refuseInvalidLinkName(device: string): void {
  const problem = interfaceNameProblem(device);
  if (problem !== undefined) throw new HostError(`refusing the sysctls of ${quote(device)}: the name ${problem}`, 'invalid interface name');
}

function noSuchLink(device: string): HostError {
  return new HostError(`cannot set the sysctls of ${quote(device)}: there is no such link`, 'no such link', true);
}

// The per-link directory of an existing link.
function linkConfDirectory(device: string): string {
  refuseInvalidLinkName(device);
  const directory = `/proc/sys/net/ipv4/conf/${device}`;
  let isDirectory = false;
  try {
    isDirectory = statSync(directory).isDirectory();
  } catch {
    // No such link in this namespace.
  }
  if (!isDirectory) throw noSuchLink(device);
  return directory;
}

export function enableRouteLocalnet(device: string): void {
  write(`${linkConfDirectory(device)}/route_localnet`, '1');
}

// Turns IPv6 off on one link; nothing to do on a kernel without IPv6. One open and
// one write, no look at "default" or at the current value first: each lookup under
// /proc/sys/net/ipv6 can walk one directory entry per namespace that ever opened its
// own (see withoutIpv6Addresses in links.ts).
export function disableLinkIpv6(device: string): void {
  refuseInvalidLinkName(device);
  const path = `/proc/sys/net/ipv6/conf/${device}/disable_ipv6`;
  try {
    // r+: the file must exist (a sysctl is never created).
    writeFileSync(path, '1', { flag: 'r+' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw cannotSet(path, '1', error);
    if (!existsSync('/proc/sys/net/ipv6')) return;
    throw noSuchLink(device);
  }
}
