import { join } from 'node:path';
import type { ConfList } from '../src/runtime/chain.js';
import { repoRoot } from '../src/sandbox/sandbox.js';
import { findExecutable, startFile } from '../src/util/exec.js';

// A runtime's view of the plugins, asynchronous unlike src/runtime/chain.ts (whose
// spawnSync keeps one call at a time): the parallel section starts 50 chains at once,
// and every section must time plugins through the same code path. The per-plugin
// configuration is built as libcni builds it.
export type Json = Record<string, unknown>;

export interface Attachment {
  containerId: string;
  netns: string;
  ifname: string;
  // Per-capability runtime values; only those a plugin declares reach it.
  capabilities?: Record<string, unknown>;
}

// Two clocks per call. ms: the runtime's, from Node's spawn to the exit seen here, as a
// runtime in a high-level language sees it (all earlier results use it). execMs: the
// plugin's own, exec to exit, taken by exec-timer (bench/exec-timer.c) inside the node:
// it leaves out Node's spawn (about a millisecond), the same for every implementation,
// which weighs most on the shortest calls. exec-timer joins the node's namespace itself
// (a setns, microseconds): its start and that step add to ms, not to execMs.
export const execTimer = join(repoRoot, 'dist', 'bench-exec-timer');

export interface CallOutcome {
  status: number;
  stdout: string;
  stderr: string;
  ms: number;
  execMs?: number;
}

export interface PluginTiming {
  type: string;
  ms: number;
  execMs: number;
}

export interface ChainOutcome {
  ms: number;
  // The sum of the plugins' execMs: the chain without the runtime's spawns and its own work between them.
  execMs: number;
  calls: PluginTiming[];
  result?: Json;
  // "<plugin>: <msg>" of the plugin that failed; the chain stops there, as libcni does.
  error?: string;
}

// A command put between the namespace switch and the plugin (GNU time, strace).
export type Prefix = (type: string) => string[];

async function run(file: string, args: readonly string[], input: string, env: NodeJS.ProcessEnv): Promise<CallOutcome> {
  const started = performance.now();
  const outcome = await startFile(file, args, { input, env }).finished;
  const ms = performance.now() - started;
  if (outcome.spawnError) return { status: 127, stdout: outcome.stdout, stderr: `${outcome.stderr}${outcome.spawnError.message}`, ms };
  const timed = /\nexec-timer-ms ([\d.]+)\n$/.exec(outcome.stderr);
  if (!timed) return { status: outcome.status, stdout: outcome.stdout, stderr: outcome.stderr, ms };
  return { status: outcome.status, stdout: outcome.stdout, stderr: outcome.stderr.slice(0, timed.index), ms, execMs: Number(timed[1]) };
}

function failureMessage(type: string, outcome: CallOutcome): string {
  try {
    const parsed = JSON.parse(outcome.stdout) as { msg?: string; details?: string };
    return `${type}: ${parsed.msg ?? 'failed'}${parsed.details ? ` (${parsed.details})` : ''}`;
  } catch {
    return `${type}: exit status ${outcome.status} ${`${outcome.stdout}${outcome.stderr}`.trim()}`.trim();
  }
}

// Told of every plugin call made, to check afterwards that a daemon served them all.
export interface CallCounter {
  noteCall(): void;
}

export class Runtime {
  private readonly located = new Map<string, string>();

  // socket: the TRESTLE_SOCKET every call carries, the bench node's own, so that no call
  // reaches a daemon outside the sandbox (one-shot: nothing listens there). nodePath: the
  // network namespace the plugins run in (the sandbox "node"); a real runtime runs them
  // in its own, which the benchmark must never touch.
  constructor(
    private readonly pluginDirs: readonly string[],
    private readonly socket: string,
    private readonly nodePath?: string,
    private readonly counter?: CallCounter,
  ) {}

  // The executable a runtime runs for `type`.
  executable(type: string): string {
    let path = this.located.get(type);
    if (path === undefined) {
      path = findExecutable(type, this.pluginDirs);
      if (path === undefined) throw new Error(`plugin ${type} not found in ${this.pluginDirs.join(':')}`);
      this.located.set(type, path);
    }
    return path;
  }

  // The environment a call carries (exec-timer passes it on as it is).
  environment(command: string): NodeJS.ProcessEnv {
    return { ...process.env, TRESTLE_SOCKET: this.socket, CNI_COMMAND: command, CNI_PATH: this.pluginDirs.join(':') };
  }

  invoke(type: string, command: string, config: Json, attachment?: Attachment, prefix: string[] = []): Promise<CallOutcome> {
    // Runtimes hand plugins their whole environment (NODE_EXTRA_CA_CERTS included).
    const env = this.environment(command);
    if (attachment) {
      env['CNI_CONTAINERID'] = attachment.containerId;
      env['CNI_NETNS'] = attachment.netns;
      env['CNI_IFNAME'] = attachment.ifname;
    }
    const [file = '', ...args] = [...(this.nodePath ? [execTimer, `--net=${this.nodePath}`, '--pass'] : []), ...prefix, this.executable(type)];
    this.counter?.noteCall();
    return run(file, args, JSON.stringify(config), env);
  }

  private pluginConfig(list: ConfList, plugin: Json, attachment: Attachment, prevResult: Json | undefined): Json {
    const config: Json = { ...plugin, cniVersion: list.cniVersion, name: list.name };
    const declared = plugin['capabilities'] as Record<string, boolean> | undefined;
    const runtimeConfig = Object.fromEntries(Object.entries(attachment.capabilities ?? {}).filter(([key]) => declared?.[key] === true));
    if (Object.keys(runtimeConfig).length > 0) config['runtimeConfig'] = runtimeConfig;
    if (prevResult !== undefined) config['prevResult'] = prevResult;
    return config;
  }

  private async chain(list: ConfList, command: 'ADD' | 'DEL', attachment: Attachment, cached: Json | undefined, prefix?: Prefix): Promise<ChainOutcome> {
    const plugins = command === 'ADD' ? list.plugins : [...list.plugins].reverse();
    const outcome: ChainOutcome = { ms: 0, execMs: 0, calls: [] };
    let previous = cached;
    const started = performance.now();
    for (const plugin of plugins) {
      const type = plugin['type'] as string;
      const call = await this.invoke(type, command, this.pluginConfig(list, plugin, attachment, previous), attachment, prefix?.(type));
      outcome.calls.push({ type, ms: call.ms, execMs: call.execMs ?? Number.NaN });
      outcome.execMs += call.execMs ?? Number.NaN;
      if (call.status !== 0) {
        outcome.error = failureMessage(type, call);
        break;
      }
      // On DEL every plugin gets the cached ADD result; on ADD each gets its predecessor's.
      if (command === 'ADD' && call.stdout.trim() !== '') previous = JSON.parse(call.stdout) as Json;
    }
    outcome.ms = performance.now() - started;
    if (command === 'ADD' && outcome.error === undefined && previous !== undefined) outcome.result = previous;
    return outcome;
  }

  add(list: ConfList, attachment: Attachment, prefix?: Prefix): Promise<ChainOutcome> {
    return this.chain(list, 'ADD', attachment, undefined, prefix);
  }

  del(list: ConfList, attachment: Attachment, cached: Json | undefined, prefix?: Prefix): Promise<ChainOutcome> {
    return this.chain(list, 'DEL', attachment, cached, prefix);
  }
}
