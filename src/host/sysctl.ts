import { readFileSync, writeFileSync } from 'node:fs';
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

export function enableRouteLocalnet(device: string): void {
  write(`/proc/sys/net/ipv4/conf/${device}/route_localnet`, '1');
}
