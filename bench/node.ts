import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { queryDaemon } from '../src/daemon/query.js';
import { Sandbox } from '../src/sandbox/sandbox.js';
import type { CallCounter } from './runtime.js';

// A sandbox "node" plus its container namespaces. The growth section needs a thousand
// of them, so they are added and removed with one `ip -batch` per hundred instead of
// one process each. Every live node is tracked, so Ctrl-C can still remove it.
// A resident node runs `trestle daemon` in its namespace on the sandbox's own socket.
export interface Container {
  name: string;
  path: string;
}

const live = new Set<BenchNode>();
// A call as the daemon logged it: from its request read to its answer.
export interface DaemonCall {
  command: string;
  plugin: string;
  ms: number;
}

function daemonLog(path: string): DaemonCall[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return [...text.matchAll(/^trestled: (\S+) (trestle-\S+) .* ([\d.]+)ms code=/gm)].map(([, command = '', plugin = '', ms = '']) => ({ command, plugin, ms: Number(ms) }));
}

export interface DaemonCpu {
  mainMs: number;
  allMs: number;
}

// The CPU a daemon used between two readings.
export function cpuBetween(before: DaemonCpu | undefined, after: DaemonCpu | undefined): DaemonCpu | undefined {
  return before && after ? { mainMs: after.mainMs - before.mainMs, allMs: after.allMs - before.allMs } : undefined;
}

// What went wrong with a node's daemon (calls it did not serve, a restart), for the report.
export const daemonTrouble: string[] = [];
// Set once cleanup has begun (Ctrl-C): a section still running must not add nodes.
let closed = false;
const batchSize = 100;

export class BenchNode implements CallCounter {
  private readonly containers: Container[] = [];
  // Plugin calls the runtime made through this node's socket, and how many of the
  // first ones were a warm-up.
  private calls = 0;
  private untimedCalls = 0;
  // The daemon's PID, on a resident node.
  daemonPid: number | undefined;
  // The daemon's own time for each call it served, from its log, once the node is gone.
  daemonCalls: DaemonCall[] = [];

  // Trestle's firewall state, on a tmpfs of its own as its default /run/trestle is on
  // any systemd machine: the sandbox's directory, and /run itself on these machines,
  // lie on the disk, where each file written costs 0.6-0.9 ms.
  readonly stateDir: string;

  private constructor(readonly sandbox: Sandbox, readonly purpose: string) {
    this.stateDir = `/run/trestle-bench-${sandbox.id}`;
  }

  static async create(purpose: string, options: { resident?: boolean } = {}): Promise<BenchNode> {
    if (closed) throw new Error('the benchmark is stopping');
    const sandbox = await Sandbox.create();
    const node = new BenchNode(sandbox, purpose);
    live.add(node);
    mkdirSync(node.stateDir, { recursive: true, mode: 0o700 });
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=64m,mode=0700', 'trestle-bench', node.stateDir]);
    if (closed) {
      await node.destroy();
      throw new Error('the benchmark is stopping');
    }
    if (options.resident) node.daemonPid = await sandbox.startDaemon();
    return node;
  }

  // CPU time the daemon has used so far (undefined on a one-shot node): its main thread,
  // which runs every call's JavaScript and netlink requests, and all its threads.
  daemonCpu(): DaemonCpu | undefined {
    if (this.daemonPid === undefined) return undefined;
    try {
      const mainNs = Number(readFileSync(`/proc/${this.daemonPid}/task/${this.daemonPid}/schedstat`, 'utf8').split(' ')[0]);
      // utime and stime, the 14th and 15th fields, in USER_HZ (100 on Linux) ticks; the
      // command name before them may hold spaces, so count from its closing parenthesis.
      const fields = readFileSync(`/proc/${this.daemonPid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      return { mainMs: mainNs / 1e6, allMs: (Number(fields[11]) + Number(fields[12])) * 10 };
    } catch {
      return undefined;
    }
  }

  noteCall(): void {
    this.calls += 1;
  }

  // The calls so far were a warm-up: the daemon's times for them are left out.
  startTiming(): void {
    this.untimedCalls = this.calls;
  }

  get path(): string {
    return this.sandbox.nodePath;
  }

  async addContainers(count: number): Promise<Container[]> {
    const added: Container[] = [];
    while (added.length < count) {
      const batch: Container[] = [];
      for (let i = 0; i < Math.min(batchSize, count - added.length); i += 1) {
        const name = `trc-${this.sandbox.id}-b${this.containers.length + 1}`;
        const container = { name, path: `/run/netns/${name}` };
        // Tracked before it exists: a half-applied batch is still cleaned up.
        this.containers.push(container);
        batch.push(container);
      }
      await execa('ip', ['-batch', '-'], { input: batch.map((container) => `netns add ${container.name}\n`).join('') });
      added.push(...batch);
    }
    return added;
  }

  // Runs a command in the node namespace and returns its standard output.
  async inNode(file: string, args: readonly string[]): Promise<string> {
    return (await this.sandbox.inNode(file, args, { reject: false })).stdout;
  }

  // A daemon that restarted (onto a new build, when someone rebuilds during the run) is
  // no longer the PID the sandbox ends: ended here, by the PID it reports. Every call
  // the runtime made must have been served, or the column measured one-shot calls.
  private async checkDaemon(): Promise<void> {
    if (this.daemonPid === undefined) return;
    const answer = await queryDaemon(this.sandbox.socketPath, 2_000);
    if (!answer.running) {
      daemonTrouble.push(`${this.purpose}: the daemon no longer answered at the end (${answer.reason})`);
      return;
    }
    if (answer.pid !== this.daemonPid) {
      daemonTrouble.push(`${this.purpose}: the daemon moved to another build during the run (pid ${this.daemonPid} → ${answer.pid}: someone rebuilt); the call that met it and those while it restarted ran one-shot`);
      process.kill(answer.pid, 'SIGKILL');
      return;
    }
    if (answer.served < this.calls) daemonTrouble.push(`${this.purpose}: the daemon served ${answer.served} of ${this.calls} calls; the others ran one-shot`);
  }

  // Removes the containers' namespaces, then the node; returns how long that took.
  async destroy(): Promise<number> {
    if (!live.delete(this)) return 0;
    await this.checkDaemon();
    if (this.daemonPid !== undefined) this.daemonCalls = daemonLog(join(this.sandbox.dir, 'daemon.log')).slice(this.untimedCalls);
    const started = performance.now();
    for (let i = 0; i < this.containers.length; i += batchSize) {
      const batch = this.containers.slice(i, i + batchSize);
      // -force: keep going past a namespace that was never created.
      await execa('ip', ['-force', '-batch', '-'], { input: batch.map((container) => `netns del ${container.name}\n`).join(''), reject: false });
    }
    this.containers.length = 0;
    await this.sandbox.destroy();
    // After the daemon: nothing has a file of it open any more.
    await execa('umount', [this.stateDir], { reject: false });
    rmSync(this.stateDir, { recursive: true, force: true });
    return performance.now() - started;
  }
}

export async function destroyAllNodes(): Promise<void> {
  closed = true;
  for (const node of [...live]) await node.destroy();
}
