import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { conflist, cniVersion, portMapping, roleOf, runtimeFor, type Implementation, type Role } from '../impls.js';
import { log } from '../log.js';
import { BenchNode } from '../node.js';
import type { ChainOutcome, Json, Prefix } from '../runtime.js';

// What one ADD costs besides time: each plugin's peak RSS (GNU time's %M, which for a
// plugin that runs helpers is the largest of it and them), and the processes each
// plugin starts (strace, successful execve by process) for an ADD and a DEL of
// config c. Untimed: strace slows everything down. With a daemon, the plugin the
// runtime runs is the client, and the processes are the daemon's: strace attaches to
// the daemon for each whole chain, and its resident memory is read before and after.
export interface ProcessCount {
  role: Role;
  count: number;
  // e.g. "iptables ×19, ip6tables ×1".
  programs: string;
}

export interface DaemonFootprint {
  // VmRSS once started, and after this section's calls.
  rssKb: { fresh: number; after: number };
  // Processes the daemon started for one ADD and one DEL of the chain.
  processes: { ADD: { count: number; programs: string }; DEL: { count: number; programs: string } };
}

export interface FootprintResult {
  implementation: Implementation;
  rssKb: Partial<Record<Role, number>>;
  processes: { ADD: ProcessCount[]; DEL: ProcessCount[] };
  daemon?: DaemonFootprint;
  failures: string[];
}

// The processes a plugin started (not itself), named by the first program each ran:
// a script's interpreter (env → node) is the same process, and the script's name is
// the informative one.
// A traced daemon (attached, never exec'd) has no program of its own to leave out.
export function countProcesses(trace: string, attached = false): { count: number; programs: string } {
  const program = new Map<string, string>();
  const pending = new Map<string, string>();
  let root: string | undefined;
  for (const line of trace.split('\n')) {
    const started = /^(\d+)\s+execve\("([^"]*)"/.exec(line);
    const resumed = /^(\d+)\s+<\.\.\. execve resumed>.*= 0$/.exec(line);
    if (started) {
      const [, pid = '', path = ''] = started;
      root ??= pid;
      if (/= 0$/.test(line) && !program.has(pid)) program.set(pid, basename(path));
      else if (line.includes('<unfinished')) pending.set(pid, basename(path));
    } else if (resumed) {
      const pid = resumed[1] ?? '';
      const path = pending.get(pid);
      if (path !== undefined && !program.has(pid)) program.set(pid, path);
    }
  }
  if (root !== undefined && !attached) program.delete(root);
  const byName = new Map<string, number>();
  for (const name of program.values()) byName.set(name, (byName.get(name) ?? 0) + 1);
  const programs = [...byName].sort((a, b) => b[1] - a[1]).map(([name, count]) => `${name} ×${count}`).join(', ');
  return { count: program.size, programs };
}

function lastLine(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').at(-1) ?? '';
  } catch {
    return '';
  }
}

// NaN once the process is gone (a daemon restarts itself onto a new build when someone
// rebuilds during the run).
export function vmRssKb(pid: number): number {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return Number.NaN;
  }
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return match ? Number(match[1]) : Number.NaN;
}

// strace attached to a running daemon (all its threads, and the processes it starts)
// until stop(); resolves once attached.
async function traceDaemon(pid: number, output: string): Promise<{ stop(): Promise<void> }> {
  const child = spawn('strace', ['-f', '-z', '-e', 'trace=execve', '-e', 'signal=none', '-o', output, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let text = '';
    child.stderr.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('attached')) resolve();
    });
    child.once('close', () => reject(new Error(`strace did not attach to the daemon: ${text.trim()}`)));
  });
  return {
    stop: async () => {
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGINT');
      await exited;
    },
  };
}

async function measure(implementation: Implementation): Promise<FootprintResult> {
  const node = await BenchNode.create(`footprint, ${implementation.label}`, { resident: implementation.resident });
  try {
    const fresh = node.daemonPid === undefined ? Number.NaN : vmRssKb(node.daemonPid);
    const runtime = runtimeFor(implementation, node);
    const list = conflist(implementation, 'c', node);
    const [container, other] = await node.addContainers(2);
    if (!container || !other) throw new Error('no container namespaces');
    const result: FootprintResult = { implementation, rssKb: {}, processes: { ADD: [], DEL: [] }, failures: [] };
    const output = (what: string, type: string) => join(node.sandbox.dir, `${what}-${type}`);
    const timed: Prefix = (type) => ['/usr/bin/time', '-f', '%M', '-o', output('rss', type), '--'];
    const attachment = { containerId: 'footprint-1', netns: container.path, ifname: 'eth0', capabilities: portMapping(20000) };

    const added = await runtime.add(list, attachment, timed);
    if (added.error) result.failures.push(added.error);
    for (const call of added.calls) {
      const role = roleOf(implementation, call.type);
      if (role) result.rssKb[role] = Number(lastLine(output('rss', call.type)));
    }
    // The IPAM plugin is the bridge's delegate, not a chain member: called alone with
    // the bridge's configuration, as the bridge calls it.
    const ipamCall = { ...(list.plugins[0] as Json), cniVersion, name: list.name };
    const ipamAttachment = { containerId: 'footprint-ipam', netns: other.path, ifname: 'eth0' };
    const ipam = await runtime.invoke(implementation.types.ipam, 'ADD', ipamCall, ipamAttachment, timed(implementation.types.ipam));
    if (ipam.status !== 0) result.failures.push(`${implementation.types.ipam}: ${ipam.stdout.trim()}`);
    result.rssKb.ipam = Number(lastLine(output('rss', implementation.types.ipam)));
    await runtime.invoke(implementation.types.ipam, 'DEL', ipamCall, ipamAttachment);

    const deleted = await runtime.del(list, attachment, added.result);
    if (deleted.error) result.failures.push(deleted.error);
    const traced = (command: 'ADD' | 'DEL'): Prefix => (type) => ['strace', '-f', '-qq', '-z', '-e', 'trace=execve', '-e', 'signal=none', '-o', output(`trace-${command}`, type), '--'];
    const count = (command: 'ADD' | 'DEL', outcome: ChainOutcome) => {
      if (outcome.error) result.failures.push(outcome.error);
      for (const call of outcome.calls) {
        const role = roleOf(implementation, call.type);
        if (role) result.processes[command].push({ role, ...countProcesses(readFileSync(output(`trace-${command}`, call.type), 'utf8')) });
      }
    };
    const again = { ...attachment, containerId: 'footprint-2' };
    if (node.daemonPid !== undefined) {
      const pid = node.daemonPid;
      const daemonTraced = async (command: 'ADD' | 'DEL', call: () => Promise<ChainOutcome>) => {
        const file = output(`trace-${command}`, 'daemon');
        const tracer = await traceDaemon(pid, file);
        try {
          const outcome = await call();
          if (outcome.error) result.failures.push(outcome.error);
          return outcome;
        } finally {
          await tracer.stop();
        }
      };
      const tracedAdd = await daemonTraced('ADD', () => runtime.add(list, again));
      await daemonTraced('DEL', () => runtime.del(list, again, tracedAdd.result));
      const processes = (command: 'ADD' | 'DEL') => countProcesses(readFileSync(output(`trace-${command}`, 'daemon'), 'utf8'), true);
      result.daemon = { rssKb: { fresh, after: vmRssKb(pid) }, processes: { ADD: processes('ADD'), DEL: processes('DEL') } };
      return result;
    }
    const tracedAdd = await runtime.add(list, again, traced('ADD'));
    count('ADD', tracedAdd);
    count('DEL', await runtime.del(list, again, tracedAdd.result, traced('DEL')));
    return result;
  } finally {
    await node.destroy();
  }
}

export async function runFootprint(implementations: readonly Implementation[]): Promise<FootprintResult[]> {
  const results: FootprintResult[] = [];
  for (const implementation of implementations) {
    log(`footprint: ${implementation.label}`);
    results.push(await measure(implementation));
  }
  return results;
}
