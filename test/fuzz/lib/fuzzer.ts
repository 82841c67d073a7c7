// Runs fuzz cases against a sandbox node and judges each one: the answer (oracle.ts),
// the time (5 s), the follow-up CHECK and DEL of a successful ADD, and the node's
// state against the baseline taken after a warm-up. A case that changed the node is
// reported and undone (or the sandbox rebuilt), so the next case starts clean.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { build } from 'esbuild';
import { execa } from 'execa';
import { referenceBin, repoRoot, Sandbox, trestleBin, type Teardownable } from '../../../src/sandbox/sandbox.js';
import { bridgeConfig, type FuzzCase, type FuzzContext } from './cases.js';
import { diffNodeState, outsideTrees, type NodeState, type StatePaths } from './node-state.js';
import { checkAnswer, type PluginAnswer, type Violation } from './oracle.js';
import type { RunReply, WorkerRequest } from './worker.js';

export const caseTimeoutMs = 5000;
// Snapshots and restores do more than a case; a hang there is the suite's own failure.
const housekeepingTimeoutMs = 30_000;

export type Mode = 'worker' | 'process';

class TimeoutError extends Error {}

// The worker process (worker.ts, bundled) in the node namespace. It runs in its own
// process group so that a case that hangs is ended with every child it started.
class Worker {
  private child: ChildProcess | undefined;
  private pending: ((line: string) => void) | undefined;

  constructor(
    private readonly bundle: string,
    private readonly nodePath: string,
    private readonly cwd: string,
  ) {}

  private start(): ChildProcess {
    const child = spawn('nsenter', [`--net=${this.nodePath}`, process.execPath, this.bundle], {
      cwd: this.cwd,
      detached: true,
      stdio: ['pipe', 'pipe', 'ignore'],
      env: { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const resolve = this.pending;
      this.pending = undefined;
      resolve?.(line);
    });
    // Not startable (the sandbox gone, nsenter missing): the waiting request fails.
    child.on('error', (error) => {
      const resolve = this.pending;
      this.pending = undefined;
      resolve?.(JSON.stringify({ ok: false, error: String(error) }));
    });
    child.on('exit', () => {
      if (this.child === child) this.child = undefined;
    });
    this.child = child;
    return child;
  }

  async request<T>(request: WorkerRequest, timeoutMs: number): Promise<T> {
    const child = this.child ?? this.start();
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = undefined;
        reject(new TimeoutError(`no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending = (answer) => {
        clearTimeout(timer);
        resolve(answer);
      };
      child.stdin!.write(`${JSON.stringify(request)}\n`);
    }).catch((error: unknown) => {
      this.stop();
      throw error;
    });
    const reply = JSON.parse(line) as { ok: boolean; value?: T; error?: string };
    if (!reply.ok) throw new Error(`fuzz worker: ${reply.error}`);
    return reply.value as T;
  }

  stop(): void {
    const child = this.child;
    this.child = undefined;
    this.pending = undefined;
    if (child?.pid === undefined || child.exitCode !== null) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

// One plugin executable from bin/, as a runtime starts it. `stdinFrom` replaces the
// case's stdin by a path opened for reading (a directory: unreadable stdin).
export async function runExecutable(nodePath: string, cwd: string, fuzzCase: FuzzCase, stdinFrom?: string): Promise<PluginAnswer | 'timeout'> {
  // One-shot on purpose (the in-process cases cover the daemon's request path): a
  // socket path where nothing listens keeps any daemon on the machine out of it.
  const env = { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', TRESTLE_SOCKET: join(cwd, 'no-daemon.sock'), ...fuzzCase.env };
  const fd = stdinFrom === undefined ? undefined : openSync(stdinFrom, 'r');
  try {
    const child = spawn('nsenter', [`--net=${nodePath}`, join(trestleBin, fuzzCase.plugin)], { cwd, env, detached: true, stdio: [fd ?? 'pipe', 'pipe', 'pipe'] });
    // A plugin that exits before reading all of stdin is no failure of the suite.
    child.stdin?.on('error', () => undefined);
    if (fd === undefined) child.stdin!.end(Buffer.from(fuzzCase.stdin, fuzzCase.binary ? 'latin1' : 'utf8'));
    const stdout: Buffer[] = [];
    child.stdout!.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr!.resume();
    return await new Promise((resolve) => {
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // Already gone.
        }
        resolve('timeout');
      }, caseTimeoutMs);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ stdout: Buffer.concat(stdout).toString('utf8'), exitCode: code ?? (signal ? 128 : -1) });
      });
    });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export interface CaseReport {
  fuzzCase: FuzzCase;
  answer: PluginAnswer | 'timeout';
  violations: Violation[];
}

// The lines of a node diff that a successful ADD and its DEL may leave: the bridge a
// network uses stays, with its gateway addresses, as with the reference plugin.
function leftBehindByDesign(line: string, bridge: string | undefined): boolean {
  if (bridge === undefined) return false;
  const tuple = /^(link|address|route) added (\[.*\])$/.exec(line);
  if (tuple) {
    const parts = JSON.parse(tuple[2] as string) as string[];
    return tuple[1] === 'route' ? parts[5] === bridge : parts[0] === bridge;
  }
  return line.startsWith(`sysctl /proc/sys/net/ipv4/conf/${bridge}/`) && line.endsWith('-> (none)') === false;
}

export class Fuzzer {
  sandbox!: Sandbox;
  context!: FuzzContext;
  private worker!: Worker;
  private baseline!: NodeState;
  private paths!: StatePaths;
  private cwd!: string;
  rebuilds = 0;

  private constructor(private readonly t: Teardownable) {}

  static async create(t: Teardownable): Promise<Fuzzer> {
    const fuzzer = new Fuzzer(t);
    t.teardown(() => fuzzer.worker?.stop());
    await fuzzer.setUp();
    return fuzzer;
  }

  // The sandbox and its fixed paths, once: generated cases name these paths, so a
  // rebuild keeps them and only renews what is inside.
  private async setUp(): Promise<void> {
    this.sandbox = await Sandbox.create(this.t);
    const dir = this.sandbox.dir;
    const escapeDir = join(dir, 'escape');
    const cwd = join(dir, 'cwd');
    const plainFile = join(dir, 'plain-file');
    writeFileSync(plainFile, '');
    const containers: string[] = [];
    for (let i = 0; i < 3; i++) containers.push((await this.sandbox.addContainer()).path);
    const keptNetns = (await this.sandbox.addContainer()).path;
    this.context = {
      id: this.sandbox.id,
      network: `fz-${this.sandbox.id}`,
      bridge: 'fzbr0',
      sandboxDir: dir,
      dataDir: this.sandbox.dataDir,
      stateDir: this.sandbox.stateDir,
      escapeDir,
      containers,
      nodePath: this.sandbox.nodePath,
      plainFile,
      cniPath: `${trestleBin}:${referenceBin}`,
      kept: { containerId: `fz-${this.sandbox.id}-kept`, netns: keptNetns, ifname: 'eth0', result: {} },
    };
    this.cwd = cwd;
    this.paths = { dataDir: this.sandbox.dataDir, stateDir: this.sandbox.stateDir, canaryDirs: [escapeDir, cwd] };
    const bundle = join(dir, 'fuzz-worker.cjs');
    await build({
      stdin: { contents: "import { serve } from './worker.ts'; serve();", resolveDir: join(repoRoot, 'test', 'fuzz', 'lib'), loader: 'ts' },
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      outfile: bundle,
      alias: { 'graceful-fs': 'node:fs' },
      logLevel: 'error',
    });
    // The native module the host layer loads from beside its bundle, as make build places it.
    copyFileSync(join(repoRoot, 'dist', 'koffi.node'), join(dir, 'koffi.node'));
    this.worker = new Worker(bundle, this.sandbox.nodePath, cwd);
    await this.prepare();
  }

  // Empty directories, the warm-up, then the baseline every case is compared with.
  private async prepare(): Promise<void> {
    const { escapeDir } = this.context;
    for (const path of [escapeDir, this.cwd, this.sandbox.dataDir, this.sandbox.stateDir]) {
      rmSync(path, { recursive: true, force: true });
      mkdirSync(path, { recursive: true });
    }
    // A directory for ../ names to land in (…/escape/x/route_localnet).
    mkdirSync(join(escapeDir, 'x'));
    await this.warmUp();
    this.baseline = await this.worker.request<NodeState>({ op: 'snapshot', paths: this.paths }, housekeepingTimeoutMs);
  }

  // What any first container leaves on a node by design: the bridge with its gateway
  // addresses, forwarding on, Trestle's nft table with its fixed chains. Made before
  // the baseline so that only what a case adds beyond that counts.
  private async warmUp(): Promise<void> {
    const ctx = this.context;
    const container = ctx.containers[0] as string;
    const env = { CNI_CONTAINERID: `fz-${ctx.id}-warm`, CNI_NETNS: container, CNI_IFNAME: 'eth0', CNI_PATH: ctx.cniPath };
    const bridge = bridgeConfig(ctx, '1.1.0');
    const added = await this.workerRun('trestle-bridge', { ...env, CNI_COMMAND: 'ADD' }, JSON.stringify(bridge));
    if (added.exitCode !== 0) throw new Error(`warm-up bridge ADD failed: ${added.stdout}`);
    const portmap = { cniVersion: '1.1.0', name: ctx.network, type: 'trestle-portmap', stateDir: ctx.stateDir, runtimeConfig: { portMappings: [{ hostPort: 18080, containerPort: 80, protocol: 'tcp' }] }, prevResult: JSON.parse(added.stdout) };
    const mapped = await this.workerRun('trestle-portmap', { ...env, CNI_COMMAND: 'ADD' }, JSON.stringify(portmap));
    if (mapped.exitCode !== 0) throw new Error(`warm-up portmap ADD failed: ${mapped.stdout}`);
    for (const [plugin, config] of [['trestle-portmap', portmap], ['trestle-bridge', { ...bridge, prevResult: portmap.prevResult }]] as const) {
      const deleted = await this.workerRun(plugin, { ...env, CNI_COMMAND: 'DEL' }, JSON.stringify(config));
      if (deleted.exitCode !== 0) throw new Error(`warm-up ${plugin} DEL failed: ${deleted.stdout}`);
    }
    const kept = await this.workerRun('trestle-bridge', { ...env, CNI_COMMAND: 'ADD', CNI_CONTAINERID: ctx.kept.containerId, CNI_NETNS: ctx.kept.netns, CNI_IFNAME: ctx.kept.ifname }, JSON.stringify(bridge));
    if (kept.exitCode !== 0) throw new Error(`kept attachment ADD failed: ${kept.stdout}`);
    ctx.kept.result = JSON.parse(kept.stdout) as Record<string, unknown>;
  }

  private workerRun(plugin: string, environment: Record<string, string>, stdin: string, binary = false): Promise<RunReply> {
    const request: WorkerRequest = { op: 'run', plugin, environment: { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...environment }, stdin: Buffer.from(stdin, binary ? 'latin1' : 'utf8').toString('base64') };
    return this.worker.request<RunReply>(request, caseTimeoutMs);
  }

  private async call(mode: Mode, fuzzCase: FuzzCase, stdinFrom?: string): Promise<PluginAnswer | 'timeout'> {
    if (mode === 'process') return runExecutable(this.context.nodePath, this.cwd, fuzzCase, stdinFrom);
    try {
      return await this.workerRun(fuzzCase.plugin, fuzzCase.env, fuzzCase.stdin, fuzzCase.binary === true);
    } catch (error) {
      if (error instanceof TimeoutError) return 'timeout';
      throw error;
    }
  }

  // The CHECK and DEL a runtime sends after a successful ADD, with its result as
  // prevResult; both must succeed.
  private async undoAdd(mode: Mode, fuzzCase: FuzzCase, result: string, violations: Violation[]): Promise<void> {
    const config = JSON.parse(fuzzCase.stdin) as Record<string, unknown>;
    // Appended as text (the last of two equal keys wins, in Go as in JavaScript): a
    // configuration may be nested deeper than JSON.stringify can go.
    const withResult = `${fuzzCase.stdin.replace(/\}\s*$/, '')},"prevResult":${result.trim()}}`;
    const version = String(config['cniVersion'] ?? '0.1.0');
    const follow = ['DEL'];
    if (!/^0\.[123]\./.test(version)) follow.unshift('CHECK');
    for (const command of follow) {
      const next: FuzzCase = { ...fuzzCase, command: command as FuzzCase['command'], env: { ...fuzzCase.env, CNI_COMMAND: command }, stdin: withResult, expect: 'success' };
      const answer = await this.call(mode, next);
      if (answer === 'timeout') violations.push({ kind: `${command} after ADD: timeout`, detail: `no answer in ${caseTimeoutMs} ms` });
      else if (answer.exitCode !== 0) violations.push({ kind: `${command} after ADD failed`, detail: answer.stdout.slice(0, 500) });
    }
  }

  // The container must hold only its loopback once the case is over.
  private async cleanContainer(container: string, violations: Violation[]): Promise<void> {
    const name = container.split('/').pop() as string;
    const outcome = await execa('ip', ['-n', name, '-j', 'link', 'show'], { reject: false });
    const links = outcome.exitCode === 0 ? (JSON.parse(outcome.stdout) as Array<{ ifname: string }>).map((link) => link.ifname).filter((ifname) => ifname !== 'lo') : [];
    if (links.length === 0) return;
    violations.push({ kind: 'container interface left behind', detail: links.join(', ') });
    for (const link of links) await execa('ip', ['-n', name, 'link', 'del', 'dev', link], { reject: false });
  }

  async run(fuzzCase: FuzzCase, mode: Mode = 'worker', stdinFrom?: string): Promise<CaseReport> {
    const started = Date.now();
    const answer = await this.call(mode, fuzzCase, stdinFrom);
    const violations: Violation[] = [];
    if (answer === 'timeout') violations.push({ kind: 'no answer within 5 s', detail: `killed after ${Date.now() - started} ms` });
    else violations.push(...checkAnswer(fuzzCase, answer));
    const added = answer !== 'timeout' && answer.exitCode === 0 && fuzzCase.command === 'ADD' && answer.stdout !== '';
    if (added) await this.undoAdd(mode, fuzzCase, answer.stdout, violations);
    if (fuzzCase.plugin === 'trestle-bridge' && (fuzzCase.command === 'ADD' || fuzzCase.command === 'CHECK')) await this.cleanContainer(fuzzCase.container, violations);
    let bridge: string | undefined;
    if (added && fuzzCase.plugin === 'trestle-bridge') {
      const config = JSON.parse(fuzzCase.stdin) as Record<string, unknown>;
      bridge = typeof config['bridge'] === 'string' ? config['bridge'] : 'cni0';
    }
    await this.settle(fuzzCase, violations, bridge);
    return { fuzzCase, answer, violations };
  }

  // Compares the node with the baseline; reports and undoes any difference.
  private async settle(fuzzCase: FuzzCase, violations: Violation[], bridge: string | undefined): Promise<void> {
    let state: NodeState;
    try {
      state = await this.worker.request<NodeState>({ op: 'snapshot', paths: this.paths }, housekeepingTimeoutMs);
    } catch (error) {
      violations.push({ kind: 'node state unreadable after the case', detail: String(error) });
      await this.rebuild();
      return;
    }
    const outside = this.outsideChanges(fuzzCase, state);
    const diff = [...diffNodeState(this.baseline, state).filter((line) => !outsideTrees.some((root) => line.startsWith(`file in ${root}:`))), ...outside];
    if (diff.length === 0) return;
    const unexpected = diff.filter((line) => !leftBehindByDesign(line, bridge));
    const byCategory = new Map<string, string[]>();
    for (const line of unexpected) {
      const category = line.startsWith('file in ') ? line.slice(0, line.indexOf(':')) : (line.split(' ')[0] as string);
      byCategory.set(category, [...(byCategory.get(category) ?? []), line]);
    }
    for (const [category, lines] of byCategory) violations.push({ kind: `node changed: ${category}`, detail: lines.slice(0, 8).join('\n') });
    const restored = await this.worker.request<NodeState>({ op: 'restore', paths: this.paths, baseline: this.baseline }, housekeepingTimeoutMs).catch(() => undefined);
    const remaining = restored === undefined ? ['unreadable'] : diffNodeState(this.baseline, restored).filter((line) => !outsideTrees.some((root) => line.startsWith(`file in ${root}:`)));
    if (remaining.length === 0) return;
    await this.rebuild();
  }

  // Outside the sandbox other programs come and go (other tests, runtimes, the
  // session's tools), and nothing there is undone: a case is charged with what
  // appeared that names it (its network, its container ID, this sandbox), which is
  // how a plugin's store or state file would be named, and the listing moves on.
  private outsideChanges(fuzzCase: FuzzCase, state: NodeState): string[] {
    const names = new Set([fuzzCase.env['CNI_CONTAINERID'], this.context.network]);
    try {
      names.add(String((JSON.parse(fuzzCase.stdin) as Record<string, unknown>)['name']));
    } catch {
      // Not JSON: no network name of its own.
    }
    const ours = (entry: string) => entry.includes(this.context.id) || entry.split('/').some((part) => names.has(part.replace(/\/$/, '')));
    const lines: string[] = [];
    for (const root of outsideTrees) {
      const before = new Set(this.baseline.files[root] ?? []);
      for (const entry of state.files[root] ?? []) if (!before.has(entry) && ours(entry)) lines.push(`file in ${root}: added ${entry}`);
      this.baseline.files[root] = state.files[root] ?? [];
    }
    return lines;
  }

  // A node or container namespace a case damaged beyond undoing: made anew under the
  // same names, since the generated cases name their paths.
  private async rebuild(): Promise<void> {
    this.rebuilds += 1;
    this.worker.stop();
    for (const path of [this.context.nodePath, ...this.context.containers, this.context.kept.netns]) {
      const name = path.split('/').pop() as string;
      await execa('ip', ['netns', 'del', name], { reject: false });
      await execa('ip', ['netns', 'add', name]);
      await execa('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    }
    await this.prepare();
  }
}
