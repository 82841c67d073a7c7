// Sandboxes for tests, the demo and benchmarks: a "node" network namespace where the
// plugins run, container namespaces, and optionally a "LAN" namespace playing the
// outside world. Every name is unique per sandbox and everything is removed in
// teardown, even when the test failed. Nothing here configures the root namespace.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { queryDaemon } from '../daemon/query.js';
import { ChainRunner, type Attachment, type ConfList } from '../runtime/chain.js';

// The sandbox runs from src/sandbox/ (tests) and from dist/ (the bundled CLI): the
// repository is the nearest directory above with a package.json.
function findRepoRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) return resolve(start, '..');
  }
}

// Bundled as CommonJS (dist/), import.meta is empty and __filename is the bundle.
const thisFile = typeof __filename === 'string' ? __filename : fileURLToPath(import.meta.url);
export const repoRoot = findRepoRoot(dirname(thisFile));
// Run from an installation (no repository around it), the plugins are the programs
// beside the running one: the launcher's directory, or the single executable's.
function installedBinDir(): string {
  const program = process.argv[1] ?? process.execPath;
  return dirname(existsSync(program) ? realpathSync(program) : process.execPath);
}
export const trestleBin = process.env['TRESTLE_BIN_DIR'] ?? (existsSync(join(repoRoot, 'package.json')) ? join(repoRoot, 'bin') : installedBinDir());
export const referenceBin = '/usr/lib/cni';

// The classic recipe's LAN: it exists only inside the sandbox.
export const lan = {
  nodeAddress: '192.168.1.10',
  hostAddress: '192.168.1.20',
  prefix: 24,
  nodeAddress6: 'fd00:1::10',
  hostAddress6: 'fd00:1::20',
  prefix6: 64,
} as const;

// Tests and benchmarks run the plugins one-shot, or, with TRESTLE_TEST_MODE=daemon,
// through a daemon each sandbox starts in its node namespace.
export function residentMode(): boolean {
  return process.env['TRESTLE_TEST_MODE'] === 'daemon';
}

// `trestle daemon` on `socket`, in the network namespace at `netns` (or this one: only
// for a runtime test that runs its plugins in the machine's namespace by design).
// Resolves with its PID once it answers; the caller ends it, by that PID.
export async function startDaemonProcess(socket: string, logPath: string, netns?: string): Promise<number> {
  // The log is a file the daemon holds itself, not a pipe to us: a daemon that
  // restarts onto a new build hands its output to the replacement, and a pipe would
  // then keep this process waiting for a child that is not ours.
  const log = openSync(logPath, 'a');
  const program = [join(trestleBin, 'trestle'), 'daemon'];
  const child = netns === undefined ? spawn(program[0] as string, program.slice(1), { env: { ...process.env, TRESTLE_SOCKET: socket }, stdio: ['ignore', log, log] }) : spawn('nsenter', [`--net=${netns}`, ...program], { env: { ...process.env, TRESTLE_SOCKET: socket }, stdio: ['ignore', log, log] });
  closeSync(log);
  if (child.pid === undefined) throw new Error('cannot start trestle daemon');
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && child.exitCode === null) {
    if ((await queryDaemon(socket, 1_000)).running) return child.pid;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  if (child.exitCode === null) process.kill(child.pid, 'SIGKILL');
  throw new Error(`trestle daemon did not start: ${existsSync(logPath) ? readFileSync(logPath, 'utf8') : 'no log'}`);
}

export interface Teardownable {
  teardown(fn: () => unknown): void;
}

export class Sandbox {
  readonly id = randomBytes(3).toString('hex');
  readonly node = `trn-${this.id}`;
  readonly nodePath = `/run/netns/${this.node}`;
  readonly dir = mkdtempSync(join(tmpdir(), `trestle-${this.id}-`));
  readonly dataDir = join(this.dir, 'ipam');
  readonly stateDir = join(this.dir, 'state');
  readonly lanNs = `trl-${this.id}`;
  // The daemon socket every plugin call made through this sandbox names, so that no
  // call can reach a daemon outside it (one serving the machine's own namespace).
  readonly socketPath = join(this.dir, 'trestled.sock');
  private readonly namespaces: string[] = [];
  private readonly processes: ResultPromise[] = [];
  private readonly daemons: number[] = [];
  private containerCount = 0;

  static async create(t?: Teardownable): Promise<Sandbox> {
    const sandbox = new Sandbox();
    t?.teardown(() => sandbox.destroy());
    await sandbox.addNamespace(sandbox.node);
    await sandbox.inNode('ip', ['link', 'set', 'lo', 'up']);
    if (residentMode()) await sandbox.startDaemon();
    return sandbox;
  }

  // What a plugin call needs in its environment besides the CNI variables.
  pluginEnvironment(): Record<string, string> {
    return { TRESTLE_SOCKET: this.socketPath };
  }

  // `trestle daemon` in the node namespace on this sandbox's socket; ended in teardown.
  // Resolves, with its PID, once it answers.
  async startDaemon(): Promise<number> {
    const pid = await startDaemonProcess(this.socketPath, join(this.dir, 'daemon.log'), this.nodePath);
    this.daemons.push(pid);
    return pid;
  }

  private async addNamespace(name: string): Promise<void> {
    this.namespaces.push(name);
    await execa('ip', ['netns', 'add', name]);
  }

  // Runs a command inside a namespace of this sandbox.
  exec(namespace: string, file: string, args: readonly string[] = [], options: { input?: string; reject?: boolean; env?: Record<string, string> } = {}) {
    return execa('ip', ['netns', 'exec', namespace, file, ...args], { input: options.input ?? '', reject: options.reject ?? true, env: options.env });
  }

  inNode(file: string, args: readonly string[] = [], options: { input?: string; reject?: boolean } = {}) {
    return this.exec(this.node, file, args, options);
  }

  // A new, empty container namespace; returns its name and path.
  async addContainer(): Promise<{ name: string; path: string; id: string }> {
    this.containerCount += 1;
    const number = this.containerCount;
    const name = `trc-${this.id}-${number}`;
    await this.addNamespace(name);
    return { name, path: `/run/netns/${name}`, id: `ctr-${this.id}-${number}` };
  }

  // The "LAN": a neighbour of the node on a veth that plays the node's uplink.
  async addLan(): Promise<void> {
    await this.addNamespace(this.lanNs);
    const batch = [
      `link add uplink0 type veth peer name lan0 netns ${this.lanNs}`,
      `addr add ${lan.nodeAddress}/${lan.prefix} dev uplink0`,
      `addr add ${lan.nodeAddress6}/${lan.prefix6} dev uplink0 nodad`,
      'link set uplink0 up',
    ].join('\n');
    await this.inNode('ip', ['-batch', '-'], { input: `${batch}\n` });
    await this.exec(this.lanNs, 'ip', ['-batch', '-'], {
      input: ['link set lo up', `addr add ${lan.hostAddress}/${lan.prefix} dev lan0`, `addr add ${lan.hostAddress6}/${lan.prefix6} dev lan0 nodad`, 'link set lan0 up'].join('\n') + '\n',
    });
  }

  // Starts a long-running process in a namespace; it is ended, by PID, in teardown.
  spawn(namespace: string, file: string, args: readonly string[] = []): ResultPromise {
    const child = execa('ip', ['netns', 'exec', namespace, file, ...args], { reject: false, stdin: 'ignore' });
    this.processes.push(child);
    return child;
  }

  runner(pluginDirs: string[] = [trestleBin, referenceBin]): ChainRunner {
    return new ChainRunner({ pluginDirs, wrapper: ['nsenter', `--net=${this.nodePath}`], env: this.pluginEnvironment() });
  }

  attachment(container: { path: string; id: string }, extra: Partial<Attachment> = {}): Attachment {
    return { containerId: container.id, netns: container.path, ifname: 'eth0', ...extra };
  }

  // A conflist whose state lives in this sandbox's directory.
  conflist(plugins: Array<Record<string, unknown>>, cniVersion = '1.1.0'): ConfList {
    return { cniVersion, name: `net-${this.id}`, plugins };
  }

  async destroy(): Promise<void> {
    // A daemon that moved to a new build mid-test is a replacement we did not start:
    // the socket says who serves it now.
    if (this.daemons.length > 0) {
      const serving = await queryDaemon(this.socketPath, 500);
      if (serving.running && !this.daemons.includes(serving.pid)) this.daemons.push(serving.pid);
    }
    for (const pid of this.daemons) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    for (const child of this.processes) {
      if (child.pid !== undefined && child.exitCode === null) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    }
    await Promise.allSettled(this.processes);
    for (const name of this.namespaces.reverse()) {
      await execa('ip', ['netns', 'del', name], { reject: false });
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
