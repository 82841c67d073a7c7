// Resident mode on the real kernel: `trestle daemon` processes this test starts (by PID,
// ended in teardown), plugin calls through the native client as a runtime makes them
// (only the environment given, stdout kept as bytes), clients of another build compiled
// into a temp dir, and a copy of the bundles a daemon can run from. For test/daemon.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { queryDaemon, type DaemonAnswer } from '../../src/daemon/query.js';
import type { Attachment, ConfList } from '../../src/runtime/chain.js';
import { referenceBin, repoRoot, Sandbox, trestleBin, type Teardownable } from '../../src/sandbox/sandbox.js';
import { pluginInput, sleep, type Json } from './faults.js';
import { findProgram } from './programs.js';

const pluginTypes = ['trestle-bridge', 'trestle-host-local', 'trestle-portmap'] as const;
const basePath = process.env['PATH'] ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

// A sandbox without the daemon TRESTLE_TEST_MODE=daemon would start: these tests start,
// stop and kill their daemons themselves.
export async function bareSandbox(t: Teardownable): Promise<Sandbox> {
  const mode = process.env['TRESTLE_TEST_MODE'];
  delete process.env['TRESTLE_TEST_MODE'];
  try {
    return await Sandbox.create(t);
  } finally {
    if (mode !== undefined) process.env['TRESTLE_TEST_MODE'] = mode;
  }
}

export interface Daemon {
  pid: number;
  log: string;
  // The daemon's exit status once it ended.
  exited: Promise<number>;
}

export interface DaemonOptions {
  socket?: string;
  // The `trestle` launcher to run: bin/trestle, or a copy's (see copyTree).
  program?: string;
  log?: string;
}

let daemonCount = 0;

// Starts `trestle daemon` in the sandbox's node namespace (nsenter and the launcher's env
// exec: the PID is the daemon's) and waits until it answers; killed in teardown. Its log
// is a file the daemon holds itself, not a pipe of ours: a replacement it starts when it
// restarts onto a new build inherits the descriptors and would keep a pipe open.
export async function startDaemon(t: Teardownable, sandbox: Sandbox, options: DaemonOptions = {}): Promise<Daemon> {
  const socket = options.socket ?? sandbox.socketPath;
  const log = options.log ?? join(sandbox.dir, `daemon-${++daemonCount}.log`);
  const output = openSync(log, 'a');
  const child = spawn('nsenter', [`--net=${sandbox.nodePath}`, options.program ?? join(trestleBin, 'trestle'), 'daemon'], {
    env: { ...process.env, PATH: basePath, TRESTLE_SOCKET: socket },
    stdio: ['ignore', output, output],
  });
  closeSync(output);
  const pid = child.pid ?? -1;
  // Only while it is our unreaped child: its PID cannot have gone to another process.
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) endProcess(pid);
  });
  let exitCode: number | null = null;
  const exited = new Promise<number>((resolve) => {
    child.once('error', () => resolve((exitCode = 127)));
    child.once('exit', (code, signal) => resolve((exitCode = code ?? (signal ? 128 : 1))));
  });
  for (let waited = 0; waited < 10_000 && exitCode === null; waited += 20) {
    const answer = await queryDaemon(socket, 1_000);
    if (answer.running && answer.pid === pid) return { pid, log, exited };
    await sleep(20);
  }
  throw new Error(`daemon pid ${pid} did not answer on ${socket}: ${readLog(log)}`);
}

// A second `trestle daemon` on the same socket, run to its end.
export async function runDaemonToEnd(sandbox: Sandbox, socket: string, timeoutMs: number): Promise<{ exitCode: number; output: string }> {
  const outcome = await execa('nsenter', [`--net=${sandbox.nodePath}`, join(trestleBin, 'trestle'), 'daemon'], {
    env: { ...process.env, TRESTLE_SOCKET: socket },
    reject: false,
    stdin: 'ignore',
    all: true,
    timeout: timeoutMs,
  });
  return { exitCode: outcome.exitCode ?? -1, output: String(outcome.all) };
}

export function readLog(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8') : '(no log)';
}

// SIGCONT first: a stopped process does not act on SIGKILL until the kernel schedules it.
export function endProcess(pid: number): void {
  if (pid <= 0) return;
  for (const signal of ['SIGCONT', 'SIGKILL'] as const) {
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
  }
}

export function status(socket: string, timeoutMs = 2_000): Promise<DaemonAnswer> {
  return queryDaemon(socket, timeoutMs);
}

export async function served(socket: string): Promise<number> {
  const answer = await status(socket);
  if (!answer.running) throw new Error(`no daemon answers on ${socket}: ${answer.reason}`);
  return answer.served;
}

export async function waitUntil(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(10);
  }
}

// ---------------------------------------------------------------- plugin calls

export interface Reply {
  exitCode: number;
  stdout: Buffer;
  stderr: string;
  ms: number;
  json: Json | undefined;
}

export interface ClientCall {
  type: string;
  // The CNI variables and anything else; PATH is added when absent.
  env: Record<string, string | undefined>;
  // undefined: stdin is /dev/null.
  input?: string | Buffer | undefined;
  // Where the plugin executables are: bin/ or a private client's directory.
  binDir?: string;
  // A command prefix run inside the node namespace (setpriv ...).
  prefix?: string[];
  timeoutMs?: number;
}

// One plugin process in the node namespace with exactly the environment given.
export async function runClient(sandbox: Sandbox, call: ClientCall): Promise<Reply> {
  const env: Record<string, string> = { PATH: basePath };
  for (const [key, value] of Object.entries(call.env)) if (value !== undefined) env[key] = value;
  const started = process.hrtime.bigint();
  const outcome = await execa('nsenter', [`--net=${sandbox.nodePath}`, ...(call.prefix ?? []), join(call.binDir ?? trestleBin, call.type)], {
    env,
    extendEnv: false,
    reject: false,
    encoding: 'buffer',
    timeout: call.timeoutMs ?? 60_000,
    ...(call.input === undefined ? { stdin: 'ignore' as const } : { input: call.input }),
  });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const stdout = Buffer.from(outcome.stdout as Uint8Array);
  let json: Json | undefined;
  try {
    json = JSON.parse(stdout.toString('utf8')) as Json;
  } catch {
    json = undefined;
  }
  return { exitCode: outcome.exitCode ?? -1, stdout, stderr: Buffer.from(outcome.stderr as Uint8Array).toString('utf8'), ms, json };
}

// The environment a runtime gives a plugin for one call on an attachment.
export function cniEnv(command: string, socket: string, attachment?: Attachment, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { CNI_COMMAND: command, CNI_PATH: `${trestleBin}:${referenceBin}`, TRESTLE_SOCKET: socket, ...extra };
  if (attachment) {
    env['CNI_CONTAINERID'] = attachment.containerId;
    env['CNI_NETNS'] = attachment.netns;
    env['CNI_IFNAME'] = attachment.ifname;
    if (attachment.cniArgs !== undefined) env['CNI_ARGS'] = attachment.cniArgs;
  }
  return env;
}

export function describeReply(reply: Reply): string {
  return `exit ${reply.exitCode} after ${reply.ms.toFixed(0)} ms: ${reply.stdout.toString('utf8').trim()} ${reply.stderr.trim().slice(0, 2000)}`.trim();
}

// One well-formed CNI error on stdout: a single JSON object with a numeric code, and
// nothing else printed.
export function cniErrorCode(reply: Reply): number | undefined {
  const text = reply.stdout.toString('utf8').trim();
  if (reply.json === undefined || text.includes('\n') || typeof reply.json['code'] !== 'number' || typeof reply.json['msg'] !== 'string') return undefined;
  return reply.json['code'] as number;
}

export interface ChainOutcome {
  // The last plugin's result when every plugin succeeded.
  result?: Json;
  // The first failure, which ends the chain as a runtime ends it.
  failure?: { plugin: string; reply: Reply };
}

export interface ChainCall {
  socket: string;
  binDir?: string;
  extra?: Record<string, string>;
}

// ADD of the list in order, prevResult chained, stopping at the first failure.
export async function addChain(sandbox: Sandbox, list: ConfList, attachment: Attachment, call: ChainCall): Promise<ChainOutcome> {
  let result: Json | undefined;
  for (const plugin of list.plugins) {
    const type = plugin['type'] as string;
    const reply = await runClient(sandbox, { type, env: cniEnv('ADD', call.socket, attachment, call.extra), input: JSON.stringify(pluginInput(list, plugin, attachment, result)), ...(call.binDir ? { binDir: call.binDir } : {}) });
    if (reply.exitCode !== 0 || reply.json === undefined) return { failure: { plugin: type, reply } };
    result = reply.json;
  }
  return result === undefined ? {} : { result };
}

// DEL in reverse order, without prevResult (a runtime that lost its cache).
export async function delChain(sandbox: Sandbox, list: ConfList, attachment: Attachment, call: ChainCall): Promise<ChainOutcome> {
  for (const plugin of [...list.plugins].reverse()) {
    const type = plugin['type'] as string;
    const reply = await runClient(sandbox, { type, env: cniEnv('DEL', call.socket, attachment, call.extra), input: JSON.stringify(pluginInput(list, plugin, attachment)), ...(call.binDir ? { binDir: call.binDir } : {}) });
    if (reply.exitCode !== 0) return { failure: { plugin: type, reply } };
  }
  return {};
}

// ---------------------------------------------------------------- other builds

// A client compiled with another build id, in `dir`, called as each plugin (symlinks to
// one file), beside a `trestle-node` that runs the repository's one-shot plugin: the
// client looks for trestle-node beside its own resolved executable.
export function privateClient(dir: string, build: string): string {
  mkdirSync(dir, { recursive: true });
  const compiler = findProgram('musl-gcc');
  if (!compiler) throw new Error('musl-gcc is missing (scripts/install-deps.sh installs musl-tools)');
  execFileSync(compiler, ['-static', '-O2', '-s', '-Wall', '-Wextra', `-DTRESTLE_BUILD="${build}"`, '-o', join(dir, 'trestle-client'), join(repoRoot, 'client', 'trestle-client.c')]);
  writeFileSync(join(dir, 'trestle-node'), `#!/bin/sh\nexec '${join(trestleBin, 'trestle-node')}' "$@"\n`);
  chmodSync(join(dir, 'trestle-node'), 0o755);
  for (const type of pluginTypes) symlinkSync('trestle-client', join(dir, type));
  return dir;
}

// bin/trestle and the bundles copied into `root` (bin/ and dist/ as in the repository), so
// that a daemon runs from a tree whose trestle.build a test may rewrite. Returns the
// copy's `trestle` launcher.
export function copyTree(root: string): string {
  mkdirSync(join(root, 'bin'), { recursive: true });
  mkdirSync(join(root, 'dist'), { recursive: true });
  for (const name of ['trestle', 'package.json']) copyFileSync(join(trestleBin, name), join(root, 'bin', name));
  const dist = join(repoRoot, 'dist');
  for (const name of readdirSync(dist)) {
    if (name.endsWith('.cjs') || name === 'trestle.build' || name === 'koffi.node') copyFileSync(join(dist, name), join(root, 'dist', name));
  }
  return join(root, 'bin', 'trestle');
}

export function installedBuild(): string {
  return readFileSync(join(repoRoot, 'dist', 'trestle.build'), 'utf8').trim();
}
