// Fault injection for the plugins: runs them as a runtime does, one process per call
// in a sandbox's node namespace, but asynchronously and with their PID at hand, so a
// test can SIGKILL a plugin at a chosen point (a lock held, a temporary file not yet
// renamed or linked, an nft or ip child running) and then do what a runtime does next.
// Windows are widened with slow `nft`/`ip` wrappers first on the plugin's PATH and with
// strace's syscall delays (TRESTLE_FAULT_STRACE_LOG=<file> keeps strace's log of the
// last traced call, to see where a plugin was held). Shared by test/faults and
// scripts/soak.mjs.
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { execa } from 'execa';
import { pluginConfig, type Attachment, type ConfList } from '../../src/runtime/chain.js';
import { referenceBin, repoRoot, trestleBin, type Sandbox } from '../../src/sandbox/sandbox.js';
import { toOutcome, type Json, type Outcome } from './bridge.js';
import { findProgram } from './programs.js';

export type { Json, Outcome } from './bridge.js';

// ---------------------------------------------------------------- seeded choices

// mulberry32: small, fast, and the same sequence for a seed on every machine.
export class Random {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let value = this.state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  }

  int(bound: number): number {
    return Math.floor(this.next() * bound);
  }

  pick<T>(choices: readonly T[]): T {
    return choices[this.int(choices.length)] as T;
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }
}

export function seedFromEnv(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const seed = Number(text);
  if (!Number.isSafeInteger(seed)) throw new Error(`${name} must be an integer, got ${JSON.stringify(text)}`);
  return seed;
}

// ---------------------------------------------------------------- the default chain

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
}

// conf/10-trestle.conflist with this sandbox's store and state. cniVersion 1.1.0, as a
// libcni that reads `cniVersions` picks it (GC exists only from 1.1.0 on).
export function defaultChain(sandbox: Sandbox, overrides: { ipam?: Json; bridge?: Json } = {}): ConfList {
  const shipped = JSON.parse(readFileSync(join(repoRoot, 'conf', '10-trestle.conflist'), 'utf8')) as ConfList;
  const plugins = shipped.plugins.map((plugin) => {
    if (plugin['type'] === 'trestle-bridge') {
      const ipam = { ...(plugin['ipam'] as Json), dataDir: sandbox.dataDir, ...overrides.ipam };
      return { ...plugin, stateDir: sandbox.stateDir, ...overrides.bridge, ipam };
    }
    return { ...plugin, stateDir: sandbox.stateDir };
  });
  return { cniVersion: '1.1.0', name: sandbox.conflist([]).name, plugins };
}

// One tcp and one udp host port, as the fault suite maps for every container.
export function hostPorts(base: number): PortMapping[] {
  return [
    { hostPort: base, containerPort: 80, protocol: 'tcp' },
    { hostPort: base, containerPort: 53, protocol: 'udp' },
  ];
}

// What one plugin of the list reads on stdin, as libcni builds it.
export function pluginInput(list: ConfList, plugin: Json, attachment: Attachment | undefined, prevResult?: Json, extra: Json = {}): Json {
  return { ...pluginConfig(list, plugin, attachment, prevResult), ...extra };
}

// trestle-host-local run on its own with the bridge's configuration, as the bridge
// would delegate to it.
export function hostLocalInput(list: ConfList, extra: Json = {}): Json {
  return { ...(list.plugins[0] as Json), cniVersion: list.cniVersion, name: list.name, ...extra };
}

// ---------------------------------------------------------------- running plugins

export type Command = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS';

export interface Slowdown {
  // `nft` and/or `ip` wrappers first on PATH: each marks its start, then waits.
  wrap?: Array<'nft' | 'ip'>;
  // Seconds each wrapped command waits before running the real one.
  delaySeconds?: number;
  // Instead of a delay: wait until this file exists (bounded to 20 s).
  gate?: string;
  // strace arguments (syscall delays) the plugin runs under.
  strace?: string[];
}

export interface Running {
  // Resolves to the plugin's own PID (not strace's, not nsenter's: nsenter execs it).
  pid: Promise<number>;
  outcome: Promise<Outcome>;
  startedAt: number;
}

const wrapperScript = (real: string) => `#!/bin/sh
# Fault-injection wrapper: records that a child started, then widens the window.
echo "$$" > "$TRESTLE_FAULT_MARKS/${real.split('/').pop()}.$$"
if [ -n "$TRESTLE_FAULT_GATE" ]; then
  n=0
  while [ ! -e "$TRESTLE_FAULT_GATE" ] && [ "$n" -lt 400 ]; do sleep 0.05; n=$((n + 1)); done
else
  sleep "\${TRESTLE_FAULT_DELAY:-0.2}"
fi
exec ${real} "$@"
`;

// The wrappers of one sandbox and the directory where they leave their marks.
export function faultDirs(sandbox: Sandbox): { wrappers: string; marks: string } {
  const wrappers = join(sandbox.dir, 'fault-wrappers');
  const marks = join(sandbox.dir, 'fault-marks');
  if (!existsSync(wrappers)) {
    for (const name of ['nft', 'ip']) {
      const real = findProgram(name);
      if (real === undefined) throw new Error(`${name} is not installed`);
      mkdirSync(join(wrappers, name), { recursive: true });
      writeFileSync(join(wrappers, name, name), wrapperScript(real));
      chmodSync(join(wrappers, name, name), 0o755);
    }
    mkdirSync(marks, { recursive: true });
  }
  return { wrappers, marks };
}

// PIDs of the wrapped children that started since the marks were last cleared.
export function wrapperMarks(sandbox: Sandbox, kind?: 'nft' | 'ip'): number[] {
  const { marks } = faultDirs(sandbox);
  return readdirSync(marks)
    .filter((name) => kind === undefined || name.startsWith(`${kind}.`))
    .map((name) => Number(name.split('.')[1]));
}

export function clearMarks(sandbox: Sandbox): void {
  const { marks } = faultDirs(sandbox);
  for (const name of readdirSync(marks)) rmSync(join(marks, name), { force: true });
}

export interface Invocation {
  type: string;
  command: Command;
  config: Json;
  attachment?: Attachment;
}

const basePath = process.env['PATH'] ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function startPlugin(sandbox: Sandbox, invocation: Invocation, slowdown: Slowdown = {}): Running {
  const { wrappers, marks } = faultDirs(sandbox);
  const path = [...(slowdown.wrap ?? []).map((name) => join(wrappers, name)), basePath].join(':');
  const env: Record<string, string> = {
    PATH: path,
    CNI_COMMAND: invocation.command,
    CNI_PATH: `${trestleBin}:${referenceBin}`,
    TRESTLE_FAULT_MARKS: marks,
    TRESTLE_FAULT_DELAY: String(slowdown.delaySeconds ?? 0.2),
    ...sandbox.pluginEnvironment(),
  };
  if (slowdown.gate !== undefined) env['TRESTLE_FAULT_GATE'] = slowdown.gate;
  const attachment = invocation.attachment;
  if (attachment) {
    env['CNI_CONTAINERID'] = attachment.containerId;
    env['CNI_NETNS'] = attachment.netns;
    env['CNI_IFNAME'] = attachment.ifname;
    if (attachment.cniArgs !== undefined) env['CNI_ARGS'] = attachment.cniArgs;
  }
  const program = join(trestleBin, invocation.type);
  // nsenter without --fork execs its program, and the launcher's env execs node:
  // the PID execa reports is the plugin's. strace forks the plugin as its child.
  const traced = slowdown.strace !== undefined;
  const args = [`--net=${sandbox.nodePath}`, ...(traced ? ['strace', '-f', '--seccomp-bpf', '-qq', '-o', process.env['TRESTLE_FAULT_STRACE_LOG'] ?? '/dev/null', ...(slowdown.strace ?? [])] : []), program];
  const child = execa('nsenter', args, { input: JSON.stringify(invocation.config), env, extendEnv: false, reject: false });
  const outcome = child.then((result) => toOutcome(result));
  const outer = child.pid;
  const pid = traced ? tracedChild(outer, program) : Promise.resolve(outer ?? -1);
  return { pid, outcome, startedAt: Date.now() };
}

// strace forks short-lived copies of itself to probe the kernel before it forks the
// plugin: the plugin is the child that runs the program (once it has exec'd).
async function tracedChild(outer: number | undefined, program: string): Promise<number> {
  if (outer === undefined) return -1;
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && alive(outer)) {
    for (const child of childrenOf(outer)) {
      try {
        const argv = readFileSync(`/proc/${child}/cmdline`, 'utf8').split('\0');
        // The native client execs the one-shot plugin in the same process:
        // `trestle-node <plugin>` is that plugin too.
        const oneShot = argv.includes(join(trestleBin, 'trestle-node')) && argv.includes(basename(program));
        if ((argv.includes(program) || oneShot) && !(argv[0] ?? '').endsWith('strace')) return child;
      } catch {
        // Gone already.
      }
    }
    await sleep(1);
  }
  return -1;
}

// How long each plugin and command took when left alone, lately: where a random
// instant within a call lies.
const durations = new Map<string, number>();

export function typicalDuration(type: string, command: Command): number {
  return durations.get(`${type} ${command}`) ?? 150;
}

export async function runPlugin(sandbox: Sandbox, invocation: Invocation, slowdown: Slowdown = {}): Promise<Outcome> {
  const running = startPlugin(sandbox, invocation, slowdown);
  const outcome = await running.outcome;
  if (slowdown.wrap === undefined && slowdown.strace === undefined) durations.set(`${invocation.type} ${invocation.command}`, Date.now() - running.startedAt);
  return outcome;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function childrenOf(pid: number): number[] {
  const found: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return found;
  }
  for (const task of tasks) {
    try {
      for (const child of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/)) if (child !== '') found.push(Number(child));
    } catch {
      // The thread ended meanwhile.
    }
  }
  return found;
}

function descendantsOf(pid: number): number[] {
  const all: number[] = [];
  for (const child of childrenOf(pid)) all.push(child, ...descendantsOf(child));
  return all;
}

// Alive and not a zombie waiting to be reaped.
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export async function waitForExit(pids: readonly number[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(alive)) {
    if (Date.now() > deadline) throw new Error(`processes ${pids.filter(alive).join(' ')} still run after ${timeoutMs} ms`);
    await sleep(5);
  }
}

// SIGKILL by PID. The plugin is stopped first so that the children it started (which
// a SIGKILL leaves running, as it would on a node) can be listed without a race;
// returns them.
export function killPlugin(pid: number): number[] {
  try {
    process.kill(pid, 'SIGSTOP');
  } catch {
    return [];
  }
  const orphans = descendantsOf(pid);
  process.kill(pid, 'SIGKILL');
  return orphans;
}

// ---------------------------------------------------------------- kill triggers

export type Trigger =
  | { kind: 'timer'; ms: number }
  // The IPAM store's lock directory exists (strace holds the plugin right after mkdir).
  | { kind: 'ipam-lock' }
  // The firewall's lock directory exists.
  | { kind: 'firewall-lock' }
  // A reservation written to its temporary file, not yet linked (link delayed).
  | { kind: 'reservation-temp' }
  // A firewall state file written to its temporary file, not yet renamed.
  | { kind: 'state-temp' }
  // A wrapped nft or ip child is running.
  | { kind: 'nft' }
  | { kind: 'ip' };

export const delayMicroseconds = 150_000;

// How each trigger widens its window.
export function slowdownFor(trigger: Trigger): Slowdown {
  const delay = (calls: string, when: 'delay_enter' | 'delay_exit') => ['-e', `trace=${calls}`, '-e', `inject=${calls}:${when}=${delayMicroseconds}`];
  switch (trigger.kind) {
    case 'ipam-lock':
    case 'firewall-lock':
      return { strace: delay('mkdir,mkdirat', 'delay_exit') };
    case 'reservation-temp':
      return { strace: delay('link,linkat', 'delay_enter') };
    case 'state-temp':
      return { strace: delay('rename,renameat,renameat2', 'delay_enter') };
    case 'nft':
      return { wrap: ['nft'] };
    case 'ip':
      return { wrap: ['ip'] };
    case 'timer':
      return {};
  }
}

function ls(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

// Every file (not directory) below `dir`, as paths relative to it.
export function filesBelow(dir: string, prefix = ''): string[] {
  const found: string[] = [];
  for (const name of ls(dir)) {
    const path = join(dir, name);
    let directory = false;
    try {
      directory = statSync(path).isDirectory();
    } catch {
      continue;
    }
    if (directory) found.push(...filesBelow(path, `${prefix}${name}/`));
    else found.push(`${prefix}${name}`);
  }
  return found;
}

export function networkDir(sandbox: Sandbox, list: ConfList): string {
  return join(sandbox.dataDir, list.name);
}

export function firewallDir(sandbox: Sandbox): string {
  return join(sandbox.stateDir, 'firewall');
}

function triggered(sandbox: Sandbox, list: ConfList, trigger: Trigger, startedAt: number): boolean {
  switch (trigger.kind) {
    case 'timer':
      return Date.now() - startedAt >= trigger.ms;
    case 'ipam-lock':
      return existsSync(join(networkDir(sandbox, list), 'trestle.lock'));
    case 'firewall-lock':
      return existsSync(join(firewallDir(sandbox), 'trestle.lock'));
    case 'reservation-temp':
      return ls(networkDir(sandbox, list)).some((name) => name.endsWith('.tmp'));
    case 'state-temp':
      return filesBelow(firewallDir(sandbox)).some((name) => name.endsWith('.tmp'));
    case 'nft':
    case 'ip':
      return wrapperMarks(sandbox, trigger.kind).length > 0;
  }
}

export interface KillReport {
  // False when the plugin finished before the trigger fired.
  killed: boolean;
  outcome?: Outcome;
  // Children it left running.
  orphans: number[];
}

// Runs one plugin and SIGKILLs it when the trigger fires; `extra` adds to the
// trigger's own slowdown (a gate for the wrapped children, say).
export async function runAndKill(sandbox: Sandbox, list: ConfList, invocation: Invocation, trigger: Trigger, extra: Slowdown = {}): Promise<KillReport> {
  clearMarks(sandbox);
  const running = startPlugin(sandbox, invocation, { ...slowdownFor(trigger), ...extra });
  let finished: Outcome | undefined;
  void running.outcome.then((outcome) => {
    finished = outcome;
  });
  const pid = await running.pid;
  while (finished === undefined && pid > 0 && alive(pid)) {
    if (triggered(sandbox, list, trigger, running.startedAt)) {
      const orphans = killPlugin(pid);
      await waitForExit([pid]);
      return { killed: true, orphans };
    }
    await sleep(trigger.kind === 'timer' ? 1 : 2);
  }
  return { killed: false, outcome: await running.outcome, orphans: [] };
}

// ---------------------------------------------------------------- the runtime's side

export class ChainFailure extends Error {
  constructor(
    readonly plugin: string,
    readonly outcome: Outcome,
  ) {
    super(`${plugin}: ${describeOutcome(outcome)}`);
  }
}

export function describeOutcome(outcome: Outcome): string {
  return `exit ${outcome.exitCode}: ${outcome.stdout.trim()} ${outcome.stderr.trim().slice(0, 2000)}`.trim();
}

export function errorCode(outcome: Outcome): number | undefined {
  const code = outcome.json?.['code'];
  return typeof code === 'number' ? code : undefined;
}

// ADD of the whole list, prevResult chained; throws ChainFailure at the first error.
export async function chainAdd(sandbox: Sandbox, list: ConfList, attachment: Attachment): Promise<Json> {
  let result: Json | undefined;
  for (const plugin of list.plugins) {
    const type = plugin['type'] as string;
    const outcome = await runPlugin(sandbox, { type, command: 'ADD', config: pluginInput(list, plugin, attachment, result), attachment });
    if (outcome.exitCode !== 0 || !outcome.json) throw new ChainFailure(type, outcome);
    result = outcome.json;
  }
  return result ?? {};
}

// DEL in reverse order; a runtime stops at the first failure and retries later.
export async function chainDel(sandbox: Sandbox, list: ConfList, attachment: Attachment, cached?: Json): Promise<void> {
  for (const plugin of [...list.plugins].reverse()) {
    const type = plugin['type'] as string;
    const outcome = await runPlugin(sandbox, { type, command: 'DEL', config: pluginInput(list, plugin, attachment, cached), attachment });
    if (outcome.exitCode !== 0) throw new ChainFailure(type, outcome);
  }
}

export async function chainCheck(sandbox: Sandbox, list: ConfList, attachment: Attachment, cached: Json): Promise<void> {
  for (const plugin of list.plugins) {
    const type = plugin['type'] as string;
    const outcome = await runPlugin(sandbox, { type, command: 'CHECK', config: pluginInput(list, plugin, attachment, cached), attachment });
    if (outcome.exitCode !== 0) throw new ChainFailure(type, outcome);
  }
}

export function gcInput(list: ConfList, plugin: Json, valid: readonly Attachment[]): Json {
  return pluginInput(list, plugin, undefined, undefined, { 'cni.dev/valid-attachments': valid.map((entry) => ({ containerID: entry.containerId, ifname: entry.ifname })) });
}

// GC of every plugin (libcni runs them all and joins the errors).
export async function chainGc(sandbox: Sandbox, list: ConfList, valid: readonly Attachment[]): Promise<void> {
  const failures: ChainFailure[] = [];
  for (const plugin of list.plugins) {
    const type = plugin['type'] as string;
    const outcome = await runPlugin(sandbox, { type, command: 'GC', config: gcInput(list, plugin, valid) });
    if (outcome.exitCode !== 0) failures.push(new ChainFailure(type, outcome));
  }
  if (failures.length > 0) throw new Error(failures.map((failure) => failure.message).join('; '));
}

// ---------------------------------------------------------------- what is left

export interface Leftovers {
  reservations: string[];
  veths: string[];
  elements: string[];
  stateFiles: string[];
  tempFiles: string[];
}

export const leftoverKinds = ['reservations', 'veths', 'elements', 'stateFiles', 'tempFiles'] as const;

// Elements of every set and map of `inet trestle` in the node namespace, one string each.
export async function nftElements(sandbox: Sandbox): Promise<string[]> {
  const listing = await sandbox.inNode('nft', ['-j', 'list', 'table', 'inet', 'trestle'], { reject: false });
  if (listing.exitCode !== 0) return [];
  const entries = (JSON.parse(String(listing.stdout)) as { nftables: Json[] }).nftables;
  const elements: string[] = [];
  for (const entry of entries) {
    const structure = (entry['set'] ?? entry['map']) as Json | undefined;
    if (!structure) continue;
    for (const element of (structure['elem'] ?? []) as unknown[]) elements.push(`${structure['name']}: ${describeElement(element)}`);
  }
  return elements.sort();
}

// nft's JSON for an element, flattened to the text a person reads.
function describeElement(element: unknown): string {
  if (element === null || typeof element !== 'object') return String(element);
  if (Array.isArray(element)) return element.map(describeElement).join(' : ');
  const object = element as Json;
  if ('elem' in object) return describeElement((object['elem'] as Json)['val']);
  if ('concat' in object) return (object['concat'] as unknown[]).map(describeElement).join(' . ');
  if ('prefix' in object) return `${describeElement(object['prefix']['addr'])}/${object['prefix']['len']}`;
  if ('range' in object) return (object['range'] as unknown[]).map(describeElement).join('-');
  return JSON.stringify(object);
}

export async function hostVeths(sandbox: Sandbox): Promise<string[]> {
  const outcome = await sandbox.inNode('ip', ['-d', '-j', 'link', 'show', 'type', 'veth']);
  return (JSON.parse(String(outcome.stdout)) as Array<{ ifname: string }>).map((link) => link.ifname).sort();
}

const addressName = /^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f:]+:[0-9a-f:]*)$/i;

export function reservationFiles(sandbox: Sandbox, list: ConfList): string[] {
  return ls(networkDir(sandbox, list))
    .filter((name) => addressName.test(name))
    .sort();
}

// Everything under the state directory but lock directories.
export function stateFiles(sandbox: Sandbox): string[] {
  return filesBelow(sandbox.stateDir)
    .filter((path) => !path.split('/').some((part) => part.endsWith('.lock')) && !path.endsWith('.tmp'))
    .sort();
}

export function tempFiles(sandbox: Sandbox): string[] {
  return [...filesBelow(sandbox.dataDir).map((path) => `ipam/${path}`), ...filesBelow(sandbox.stateDir).map((path) => `state/${path}`)].filter((path) => path.endsWith('.tmp')).sort();
}

// Temporary files written less than `seconds` ago: an ADD may still be writing them.
export function youngTempFiles(sandbox: Sandbox, seconds: number): string[] {
  const since = Date.now() - seconds * 1000;
  return tempFiles(sandbox).filter((path) => {
    const [root, ...rest] = path.split('/');
    try {
      return statSync(join(root === 'ipam' ? sandbox.dataDir : sandbox.stateDir, ...rest)).mtimeMs > since;
    } catch {
      return false;
    }
  });
}

export async function leftovers(sandbox: Sandbox, list: ConfList): Promise<Leftovers> {
  return {
    reservations: reservationFiles(sandbox, list),
    veths: await hostVeths(sandbox),
    elements: await nftElements(sandbox),
    stateFiles: stateFiles(sandbox),
    tempFiles: tempFiles(sandbox),
  };
}

// Pushes the mtime of every temporary file past any grace period, as time would.
export function ageTempFiles(sandbox: Sandbox, seconds = 3600): void {
  const then = new Date(Date.now() - seconds * 1000);
  for (const root of [sandbox.dataDir, sandbox.stateDir]) {
    for (const path of filesBelow(root)) if (path.endsWith('.tmp')) utimesSync(join(root, path), then, then);
  }
}

// What differs between two snapshots, for assertion messages; empty when equal.
export function difference(expected: Leftovers, actual: Leftovers): string[] {
  const lines: string[] = [];
  for (const kind of leftoverKinds) {
    const extra = actual[kind].filter((item) => !expected[kind].includes(item));
    const missing = expected[kind].filter((item) => !actual[kind].includes(item));
    if (extra.length > 0) lines.push(`${kind} left: ${extra.join(', ')}`);
    if (missing.length > 0) lines.push(`${kind} gone: ${missing.join(', ')}`);
  }
  return lines;
}

export const nothing: Leftovers = { reservations: [], veths: [], elements: [], stateFiles: [], tempFiles: [] };

// The container's address in an ADD result (the first IPv4 one).
export function resultAddress(result: Json | undefined): string {
  const ips = (result?.['ips'] ?? []) as Array<{ address: string }>;
  return String(ips[0]?.address.split('/')[0]);
}

export function resultHostVeth(result: Json | undefined): string {
  return String(((result?.['interfaces'] ?? []) as Json[])[1]?.['name']);
}

// The runtime deleted the container (or lost it): its namespace is gone.
export async function deleteNamespace(container: { name: string }): Promise<void> {
  await execa('ip', ['netns', 'del', container.name], { reject: false });
}
