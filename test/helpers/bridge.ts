// Drives trestle-bridge inside a sandbox's node namespace exactly as a runtime does
// (one process per call, environment + stdin → stdout) and reads the kernel's and the
// IPAM store's state back, for the tests in test/bridge.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Attachment } from '../../src/runtime/chain.js';
import { referenceBin, trestleBin, type Sandbox } from '../../src/sandbox/sandbox.js';

export type Json = Record<string, any>;

export const bridgeName = 'trestle0';
export const subnet4 = '10.88.0.0/24';
export const gateway4 = '10.88.0.1';
export const subnet6 = 'fd88::/64';
export const gateway6 = 'fd88::1';

// The network's trestle-bridge entry: this sandbox's IPAM store and firewall state.
export function bridgeEntry(sandbox: Sandbox, options: { dualStack?: boolean; bridge?: Json; ipam?: Json } = {}): Json {
  const ranges: unknown[] = [[{ subnet: subnet4 }]];
  if (options.dualStack) ranges.push([{ subnet: subnet6 }]);
  return {
    type: 'trestle-bridge',
    bridge: bridgeName,
    isDefaultGateway: true,
    stateDir: sandbox.stateDir,
    ...options.bridge,
    ipam: { type: 'trestle-host-local', dataDir: sandbox.dataDir, ranges, ...options.ipam },
  };
}

// The configuration one plugin reads on stdin.
export function pluginConfig(sandbox: Sandbox, entry: Json, cniVersion = '1.0.0', extra: Json = {}): Json {
  return { cniVersion, name: networkName(sandbox), ...entry, ...extra };
}

export function networkName(sandbox: Sandbox): string {
  return `net-${sandbox.id}`;
}

export interface Outcome {
  exitCode: number;
  stdout: string;
  stderr: string;
  json: Json | undefined;
}

export interface Call {
  command: 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS';
  containerId?: string;
  netns?: string;
  ifname?: string;
  cniArgs?: string;
}

export function call(command: Call['command'], attachment: Attachment, overrides: Partial<Call> = {}): Call {
  const result: Call = { command, containerId: attachment.containerId, netns: attachment.netns, ifname: attachment.ifname, ...overrides };
  if (attachment.cniArgs !== undefined && overrides.cniArgs === undefined) result.cniArgs = attachment.cniArgs;
  return result;
}

// One plugin process in the node namespace. Only the variables the call names are
// set (and PATH), so nothing of the test runner's environment leaks in.
export async function invoke(sandbox: Sandbox, type: string, request: Call, config: Json, binDir = type.startsWith('trestle-') ? trestleBin : referenceBin): Promise<Outcome> {
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: request.command,
    CNI_PATH: `${trestleBin}:${referenceBin}`,
    ...sandbox.pluginEnvironment(),
  };
  const optional: Array<[string, string | undefined]> = [
    ['CNI_CONTAINERID', request.containerId],
    ['CNI_NETNS', request.netns],
    ['CNI_IFNAME', request.ifname],
    ['CNI_ARGS', request.cniArgs],
  ];
  for (const [name, value] of optional) if (value !== undefined) env[name] = value;
  const outcome = await execa('nsenter', [`--net=${sandbox.nodePath}`, join(binDir, type)], {
    input: JSON.stringify(config),
    env,
    extendEnv: false,
    reject: false,
  });
  return toOutcome(outcome);
}

// A finished process as the tests read it: its JSON answer when stdout holds one.
export function toOutcome(outcome: { exitCode?: number | undefined; stdout: unknown; stderr: unknown }): Outcome {
  const stdout = String(outcome.stdout);
  let json: Json | undefined;
  try {
    json = JSON.parse(stdout) as Json;
  } catch {
    json = undefined;
  }
  return { exitCode: outcome.exitCode ?? -1, stdout, stderr: String(outcome.stderr), json };
}

// Describes an outcome for assertion messages.
export function describe(outcome: Outcome): string {
  return `exit ${outcome.exitCode}: ${outcome.stdout.trim()} ${outcome.stderr.trim()}`.trim();
}

// The IPAM store's bookkeeping, not reservations: the reference's lock file, Trestle's
// lock directory (which a daemon keeps for a moment after each call) and the
// last_reserved_ip.<n> hints.
export function isStoreBookkeeping(name: string): boolean {
  return name === 'lock' || name === 'trestle.lock' || name.startsWith('last_reserved_ip.');
}

// Reserved addresses of the network: every IPAM file but the bookkeeping ones.
export function reservations(sandbox: Sandbox): string[] {
  try {
    return readdirSync(join(sandbox.dataDir, networkName(sandbox))).filter((entry) => !isStoreBookkeeping(entry));
  } catch {
    return [];
  }
}

export interface LinkState {
  ifname: string;
  address: string;
  mtu: number;
  flags: string[];
  master?: string;
  promiscuity?: number;
  linkinfo?: { info_kind?: string; info_data?: { mcast_snooping?: number }; info_slave_data?: { hairpin?: boolean; isolated?: boolean } };
  addr_info: Array<{ family: string; local: string; prefixlen: number; tentative?: boolean; dadfailed?: boolean }>;
}

export async function links(sandbox: Sandbox, namespace: string): Promise<LinkState[]> {
  const outcome = await sandbox.exec(namespace, 'ip', ['-d', '-j', 'addr', 'show']);
  return JSON.parse(String(outcome.stdout)) as LinkState[];
}

export async function link(sandbox: Sandbox, namespace: string, name: string): Promise<LinkState | undefined> {
  return (await links(sandbox, namespace)).find((entry) => entry.ifname === name);
}

export async function veths(sandbox: Sandbox, namespace = sandbox.node): Promise<string[]> {
  return (await links(sandbox, namespace)).filter((entry) => entry.linkinfo?.info_kind === 'veth').map((entry) => entry.ifname);
}

export function addressesOf(state: LinkState | undefined, family: 4 | 6): string[] {
  const wanted = family === 4 ? 'inet' : 'inet6';
  return (state?.addr_info ?? []).filter((entry) => entry.family === wanted).map((entry) => `${entry.local}/${entry.prefixlen}`);
}

export interface RouteState {
  dst: string;
  gateway?: string;
  dev?: string;
}

export async function routes(sandbox: Sandbox, namespace: string, family: 4 | 6): Promise<RouteState[]> {
  const outcome = await sandbox.exec(namespace, 'ip', [`-${family}`, '-j', 'route', 'show']);
  return JSON.parse(String(outcome.stdout)) as RouteState[];
}

export async function defaultRoute(sandbox: Sandbox, namespace: string, family: 4 | 6): Promise<RouteState | undefined> {
  return (await routes(sandbox, namespace, family)).find((route) => route.dst === 'default');
}

// One echo request with a short deadline; true when answered.
export async function ping(sandbox: Sandbox, namespace: string, address: string): Promise<boolean> {
  const args = ['ping', '-c', '1', '-W', '2'];
  if (address.includes(':')) args.push('-6');
  const outcome = await sandbox.exec(namespace, 'busybox', [...args, address], { reject: false });
  return outcome.exitCode === 0;
}

export function addressOnly(cidr: string): string {
  return cidr.split('/')[0] as string;
}

// The addresses of an ADD result (0.3.0 and later), without prefix lengths.
export function resultAddresses(result: Json | undefined): string[] {
  return ((result?.['ips'] ?? []) as Array<{ address: string }>).map((ip) => addressOnly(ip.address));
}

// trestle-bridge lists bridge, host veth, container interface, in that order.
export function resultHostVeth(result: Json | undefined): string {
  return String(((result?.['interfaces'] ?? []) as Json[])[1]?.['name']);
}

// Milliseconds, for the figures the measurements print.
export function median(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}
