// Fault injection for the plugins: runs them as a runtime does, one process per call
// in a sandbox's node namespace, but asynchronously and with their PID at hand, so a
// test can SIGKILL a plugin at a chosen point (a lock held, a temporary file not yet
// renamed or linked, an nftables transaction or rtnetlink request in the kernel) and
// then do what a runtime does next. The plugins start no process of their own: they
// speak rtnetlink and libnftables in-process, so windows are widened with strace's
// syscall delays, and "inside that request" is read from /proc/<pid>/task/*/syscall
// and the message in the plugin's memory (TRESTLE_FAULT_STRACE_LOG=<file> keeps
// strace's log of the last traced call, to see where a plugin was held). Shared by
// test/faults and scripts/soak.mjs.
import { closeSync, existsSync, openSync, readFileSync, readSync, readdirSync, statSync, utimesSync } from 'node:fs';
import { basename, join } from 'node:path';
import { execa } from 'execa';
import { pluginConfig, type Attachment, type ConfList } from '../../src/runtime/chain.js';
import { referenceBin, repoRoot, trestleBin, type Sandbox } from '../../src/sandbox/sandbox.js';
import { toOutcome, type Json, type Outcome } from './bridge.js';

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
  // strace arguments (syscall delays) the plugin runs under.
  strace?: string[];
}

export interface Running {
  // Resolves to the plugin's own PID (not strace's, not nsenter's: nsenter execs it).
  pid: Promise<number>;
  outcome: Promise<Outcome>;
  startedAt: number;
}

export interface Invocation {
  type: string;
  command: Command;
  config: Json;
  attachment?: Attachment;
}

const basePath = process.env['PATH'] ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function startPlugin(sandbox: Sandbox, invocation: Invocation, slowdown: Slowdown = {}): Running {
  const env: Record<string, string> = {
    PATH: basePath,
    CNI_COMMAND: invocation.command,
    CNI_PATH: `${trestleBin}:${referenceBin}`,
    ...sandbox.pluginEnvironment(),
  };
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
  if (slowdown.strace === undefined) durations.set(`${invocation.type} ${invocation.command}`, Date.now() - running.startedAt);
  return outcome;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// The thread ids of a process; none once it is gone.
function threadsOf(pid: number): string[] {
  try {
    return readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
}

function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const task of threadsOf(pid)) {
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

// SIGKILL by PID. The plugin is stopped first so that any child it started (which a
// SIGKILL would leave running, as on a node) can be listed without a race; returns
// them. The plugins start none, so a test asserts the list is empty.
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
  // Inside the sendmsg that carries an nftables transaction (libnftables sends a batch
  // in one sendmsg, and the kernel commits or refuses it within that call): held at the
  // call's entry, nothing is committed yet ...
  | { kind: 'nft-sending' }
  // ... or at its exit: the transaction is committed, the plugin has not read the answer.
  | { kind: 'nft-committed' }
  // Inside the nth rtnetlink request that changes something (a link, address or route
  // made, set or removed; queries are not counted), held at the exit of its send: the
  // kernel has done it, the plugin has not read the answer.
  | { kind: 'netlink'; nth: number };

const delayMicroseconds = 150_000;
// The nftables and rtnetlink triggers fire only once the test's poller has seen a send
// held for a while (holdThreshold), and that poller shares two CPUs with the other
// workers, strace and the plugins: with 150 ms, a slower machine saw only 23 of 40
// nftables sends in time, and too few kills landed. A plugin makes one or two such
// sendmsg calls, so a longer hold costs little.
const nftDelayMicroseconds = 400_000;
// Every send of a netlink message is delayed for the netlink trigger (strace cannot
// pick rtnetlink changes among them), so each costs less.
const netlinkDelayMicroseconds = 100_000;

// strace arguments that delay the given calls at their entry or exit.
export function syscallDelay(calls: string, when: 'delay_enter' | 'delay_exit', microseconds: number): string[] {
  return ['-e', `trace=${calls}`, '-e', `inject=${calls}:${when}=${microseconds}`];
}

// How each trigger widens its window.
export function slowdownFor(trigger: Trigger): Slowdown {
  switch (trigger.kind) {
    case 'ipam-lock':
    case 'firewall-lock':
      return { strace: syscallDelay('mkdir,mkdirat', 'delay_exit', delayMicroseconds) };
    case 'reservation-temp':
      return { strace: syscallDelay('link,linkat', 'delay_enter', delayMicroseconds) };
    case 'state-temp':
      return { strace: syscallDelay('rename,renameat,renameat2', 'delay_enter', delayMicroseconds) };
    case 'nft-sending':
      return { strace: syscallDelay('sendmsg', 'delay_enter', nftDelayMicroseconds) };
    case 'nft-committed':
      return { strace: syscallDelay('sendmsg', 'delay_exit', nftDelayMicroseconds) };
    case 'netlink':
      return { strace: syscallDelay('sendto', 'delay_exit', netlinkDelayMicroseconds) };
    case 'timer':
      return {};
  }
}

// ---------------------------------------------------------------- inside a syscall

// x86_64 numbers, as /proc/<pid>/task/<tid>/syscall shows them while a thread is in
// (or held by strace at the entry or exit of) that call.
const syscallNumbers: Record<string, { sendto: number; sendmsg: number }> = { x64: { sendto: 44, sendmsg: 46 } };

function numbers(): { sendto: number; sendmsg: number } {
  const found = syscallNumbers[process.arch];
  if (found === undefined) throw new Error(`the fault triggers know the syscall numbers of x86_64 only, not ${process.arch}`);
  return found;
}

// The netlink message a thread of the plugin is sending: where from, and its header's
// type and sequence number.
interface NetlinkMessage {
  tid: number;
  fd: number;
  type: number;
  seq: number;
}

// Bytes of the plugin's memory (root may read a traced process's).
function readMemory(pid: number, address: bigint, length: number): Buffer | undefined {
  if (address === 0n) return undefined;
  let fd: number | undefined;
  try {
    fd = openSync(`/proc/${pid}/mem`, 'r');
    const buffer = Buffer.alloc(length);
    return readSync(fd, buffer, 0, length, address) === length ? buffer : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}


// The first netlink message each thread of the plugin is sending right now with `call`:
// sendto(fd, buf, ...) carries it in buf; sendmsg(fd, msghdr, ...) in the first iovec
// (msghdr.msg_iov at offset 16, iovec.iov_base at 0).
function sendingNow(pid: number, call: 'sendto' | 'sendmsg'): NetlinkMessage[] {
  const number = numbers()[call];
  const found: NetlinkMessage[] = [];
  for (const task of threadsOf(pid)) {
    let fields: string[];
    try {
      fields = readFileSync(`/proc/${pid}/task/${task}/syscall`, 'utf8').trim().split(' ');
    } catch {
      continue;
    }
    if (Number(fields[0]) !== number || fields[2] === undefined) continue;
    const argument = BigInt(fields[2]);
    let buffer = argument;
    if (call === 'sendmsg') {
      const iov = readMemory(pid, argument + 16n, 8)?.readBigUInt64LE(0);
      buffer = iov === undefined ? 0n : (readMemory(pid, iov, 8)?.readBigUInt64LE(0) ?? 0n);
    }
    const header = readMemory(pid, buffer, 16);
    if (header) found.push({ tid: Number(task), fd: Number(fields[1]), type: header.readUInt16LE(4), seq: header.readUInt32LE(8) });
  }
  return found;
}

// nfnetlink's batch begin (NFNL_MSG_BATCH_BEGIN): the first message of a transaction.
const batchBegin = 0x10;

function keyOf(message: NetlinkMessage): string {
  return `${message.tid} ${message.fd} ${message.type} ${message.seq}`;
}

// strace stops a traced call at both its entry and its exit but delays only one of them;
// a poll can land on the other, brief stop (the nft-committed trigger once killed a DEL
// at the entry of its transaction, before the kernel saw it). A send seen for this long
// is in the delayed stop: far above a stop strace does not delay, well inside the delay.
function holdThreshold(delay: number): number {
  return Math.min(delay / 1000 / 3, 50);
}

// A poller of the sends the plugin's threads are in: each call returns the sends seen
// held for at least `thresholdMs` so far, in the order they were first seen.
function heldSends(pid: number, call: 'sendto' | 'sendmsg', thresholdMs: number, keep: (message: NetlinkMessage) => boolean): () => NetlinkMessage[] {
  const sightings = new Map<string, { first: number; last: number; message: NetlinkMessage }>();
  return () => {
    const now = Date.now();
    for (const message of sendingNow(pid, call).filter(keep)) {
      const seen = sightings.get(keyOf(message));
      if (seen === undefined) sightings.set(keyOf(message), { first: now, last: now, message });
      else seen.last = now;
    }
    return [...sightings.values()].filter((seen) => seen.last - seen.first >= thresholdMs).map((seen) => seen.message);
  };
}

// A poller that says when a thread of the plugin is held by strace (for `delay`
// microseconds) in the sendmsg of an nftables transaction.
export function nftTransactionHeld(pid: number, delay: number): () => boolean {
  const held = heldSends(pid, 'sendmsg', holdThreshold(delay), (message) => message.type === batchBegin);
  return () => held().length > 0;
}

const rtnetlinkNames: Record<number, string> = { 16: 'RTM_NEWLINK', 17: 'RTM_DELLINK', 19: 'RTM_SETLINK', 20: 'RTM_NEWADDR', 21: 'RTM_DELADDR', 24: 'RTM_NEWROUTE', 25: 'RTM_DELROUTE' };

// rtnetlink types are below 0x100 (nfnetlink's are subsystem << 8), from RTM_BASE 16 on,
// four per object (NEW, DEL, GET, SET): the GETs are queries.
function rtnetlinkChange(message: NetlinkMessage): boolean {
  return message.type >= 16 && message.type < 0x100 && message.type % 4 !== 2;
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

// A check, polled, that says when the trigger has fired and what the plugin was doing.
function watch(sandbox: Sandbox, list: ConfList, trigger: Trigger, startedAt: number, pid: number): () => string | undefined {
  const fired = (yes: boolean) => (yes ? trigger.kind : undefined);
  switch (trigger.kind) {
    case 'timer':
      return () => fired(Date.now() - startedAt >= trigger.ms);
    case 'ipam-lock':
      return () => fired(existsSync(join(networkDir(sandbox, list), 'trestle.lock')));
    case 'firewall-lock':
      return () => fired(existsSync(join(firewallDir(sandbox), 'trestle.lock')));
    case 'reservation-temp':
      return () => fired(ls(networkDir(sandbox, list)).some((name) => name.endsWith('.tmp')));
    case 'state-temp':
      return () => fired(filesBelow(firewallDir(sandbox)).some((name) => name.endsWith('.tmp')));
    case 'nft-sending':
    case 'nft-committed': {
      const held = nftTransactionHeld(pid, nftDelayMicroseconds);
      return () => fired(held());
    }
    case 'netlink': {
      // Each request is seen on several polls while strace holds it: counted once.
      const held = heldSends(pid, 'sendto', holdThreshold(netlinkDelayMicroseconds), rtnetlinkChange);
      return () => {
        const message = held()[trigger.nth - 1];
        return message === undefined ? undefined : (rtnetlinkNames[message.type] ?? `rtnetlink type ${message.type}`);
      };
    }
  }
}

export interface KillReport {
  // False when the plugin finished before the trigger fired.
  killed: boolean;
  // Where it was killed: the trigger, or for netlink the request it was in.
  caught?: string;
  outcome?: Outcome;
  // Children it left running: none, since the plugins start no process.
  orphans: number[];
}

// Runs one plugin and SIGKILLs it when the trigger fires.
export async function runAndKill(sandbox: Sandbox, list: ConfList, invocation: Invocation, trigger: Trigger): Promise<KillReport> {
  const running = startPlugin(sandbox, invocation, slowdownFor(trigger));
  let finished: Outcome | undefined;
  void running.outcome.then((outcome) => {
    finished = outcome;
  });
  const pid = await running.pid;
  const check = watch(sandbox, list, trigger, running.startedAt, pid);
  while (finished === undefined && pid > 0 && alive(pid)) {
    const caught = check();
    if (caught !== undefined) {
      const orphans = killPlugin(pid);
      await waitForExit([pid]);
      return { killed: true, caught, orphans };
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
