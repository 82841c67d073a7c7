// Runs host-local plugins as a runtime does (environment + stdin → stdout) and reads
// their store, for the tests in test/host-local.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import t from 'tap';
import { residentMode, Sandbox } from '../../src/sandbox/sandbox.js';
import { isStoreBookkeeping } from './bridge.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const binDir = process.env['TRESTLE_BIN_DIR'] ?? join(repoRoot, 'bin');

export const trestleHostLocal = join(binDir, 'trestle-host-local');
export const referenceHostLocal = '/usr/lib/cni/host-local';
// The newest version the Debian reference plugins (1.1.x) speak.
export const referenceVersion = '1.0.0';
// host-local never enters the namespace; any absolute path will do.
export const someNetns = '/run/netns/trestle-test-unused';

export type Json = Record<string, any>;

export interface Call {
  command: string;
  containerId?: string;
  ifname?: string;
  netns?: string;
  cniArgs?: string;
  cniPath?: string;
}

export interface Outcome {
  exitCode: number;
  stdout: string;
  stderr: string;
  // stdout decoded, when it is JSON.
  json: Json | undefined;
}

interface Teardown {
  teardown(fn: () => void): void;
}

export function tempDir(t: Teardown, prefix = 'trestle-hl-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// host-local only touches files, so its calls run here; in resident mode a daemon in a
// sandbox's node namespace serves them (one per test file), and otherwise the socket
// path names nothing, so that no daemon on the machine takes part.
let residentSandbox: Promise<Sandbox> | undefined;

async function socketPath(): Promise<string> {
  if (!residentMode()) return join(tmpdir(), `trestle-no-daemon-${process.pid}.sock`);
  residentSandbox ??= Sandbox.create(t);
  return (await residentSandbox).socketPath;
}

// Only the variables a call names are set: a test that leaves one out sees it missing,
// and nothing from the test runner's own environment leaks in besides PATH.
function environment(call: Call, socket: string): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', CNI_COMMAND: call.command, TRESTLE_SOCKET: socket };
  const optional: Array<[string, string | undefined]> = [
    ['CNI_CONTAINERID', call.containerId],
    ['CNI_NETNS', call.netns],
    ['CNI_IFNAME', call.ifname],
    ['CNI_ARGS', call.cniArgs],
    ['CNI_PATH', call.cniPath],
  ];
  for (const [name, value] of optional) if (value !== undefined) env[name] = value;
  return env;
}

function decode(stdout: string): Json | undefined {
  try {
    return JSON.parse(stdout) as Json;
  } catch {
    return undefined;
  }
}

export async function invoke(plugin: string, call: Call, stdin: Json | string): Promise<Outcome> {
  const input = typeof stdin === 'string' ? stdin : JSON.stringify(stdin);
  const outcome = await execa(plugin, [], { input, env: environment(call, await socketPath()), extendEnv: false, reject: false, stripFinalNewline: false });
  const stdout = String(outcome.stdout);
  return { exitCode: outcome.exitCode ?? -1, stdout, stderr: String(outcome.stderr), json: decode(stdout) };
}

export interface Attach {
  containerId: string;
  ifname?: string;
  cniArgs?: string;
}

// The usual ADD/DEL call: everything set, as a runtime would.
export function attachCall(command: 'ADD' | 'DEL' | 'CHECK', attach: Attach): Call {
  const call: Call = { command, containerId: attach.containerId, ifname: attach.ifname ?? 'eth0', netns: someNetns, cniPath: '/usr/lib/cni' };
  if (attach.cniArgs !== undefined) call.cniArgs = attach.cniArgs;
  return call;
}

export function add(plugin: string, attach: Attach, config: Json): Promise<Outcome> {
  return invoke(plugin, attachCall('ADD', attach), config);
}

export function del(plugin: string, attach: Attach, config: Json): Promise<Outcome> {
  return invoke(plugin, attachCall('DEL', attach), config);
}

export interface NetworkOptions {
  cniVersion?: string;
  name?: string;
  // Keys of the ipam section besides type and dataDir (ranges, subnet, routes...).
  ipam?: Json;
  // Top-level keys (args, runtimeConfig, prevResult...).
  extra?: Json;
}

export function network(dataDir: string, options: NetworkOptions = {}): Json {
  return {
    cniVersion: options.cniVersion ?? '1.1.0',
    name: options.name ?? 'testnet',
    type: 'bridge',
    ...options.extra,
    ipam: { type: 'host-local', dataDir, ...(options.ipam ?? { ranges: [[{ subnet: '10.10.0.0/24' }]] }) },
  };
}

// The addresses of a successful ADD, without prefix lengths.
export function addressesOf(outcome: Outcome): string[] {
  const ips = (outcome.json?.['ips'] ?? []) as Array<{ address: string }>;
  return ips.map((ip) => ip.address.split('/')[0] as string);
}

// <dataDir>/<network>: every reservation file name → its content.
// Returns once no Trestle lock is held on the store: a daemon keeps it for a moment
// after its last call (at most a few ms here; bounded at 2 s).
export async function storeIdle(directory: string): Promise<void> {
  for (let waited = 0; existsSync(join(directory, 'trestle.lock')) && waited < 2_000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10));
}

export function reservations(dataDir: string, name = 'testnet'): Map<string, string> {
  const directory = join(dataDir, name);
  const found = new Map<string, string>();
  let names: string[] = [];
  try {
    names = readdirSync(directory);
  } catch {
    return found;
  }
  for (const entry of names) {
    if (isStoreBookkeeping(entry)) continue;
    found.set(entry, readFileSync(join(directory, entry), 'utf8'));
  }
  return found;
}

export function lastReserved(dataDir: string, rangeSet = 0, name = 'testnet'): string {
  return readFileSync(join(dataDir, name, `last_reserved_ip.${rangeSet}`), 'utf8');
}

// The reference's record of an owner: "<containerID>\r\n<ifname>".
export function owner(containerId: string, ifname = 'eth0'): string {
  return `${containerId}\r\n${ifname}`;
}
