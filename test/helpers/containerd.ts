// A private containerd 1.6 for test/runtimes/containerd.test.ts: its daemon and every
// ctr call run in a sandbox's node namespace, with root, state, socket, shim sockets and
// runc state inside the sandbox's directory, and Trestle installed by `make install`
// where ctr looks for plugins. Nothing of it is written to the machine's own
// directories, and teardown ends only the processes it started.
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type Result, type ResultPromise } from 'execa';
import { repoRoot, type Sandbox } from '../../src/sandbox/sandbox.js';
import { findProgram } from './programs.js';

export type Json = Record<string, any>;

// ctr 1.6 has no flag for these: go-cni's defaults (plugins, configurations) and
// libcni's result cache.
const cniBinDir = '/opt/cni';
const cniConfDir = '/etc/cni/net.d';
const cniCacheDir = '/var/lib/cni';

// Why the test cannot run here, or undefined when it can.
export async function missingContainerd(): Promise<string | undefined> {
  for (const program of ['containerd', 'ctr']) {
    if (findProgram(program) === undefined) return `${program} is not installed (Debian: apt-get install containerd)`;
  }
  return undefined;
}

function quote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}


// Processes whose command line names a containerd socket: that daemon's shims only.
export function shimsOf(socket: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const args = readFileSync(join('/proc', entry, 'cmdline'), 'utf8').split('\0');
      if (args.some((arg) => arg.includes('containerd-shim')) && args.includes(socket)) pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function killAll(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

// The cgroup v2 root, or each v1 hierarchy (and the hybrid's unified one).
export function cgroupRoots(): string[] {
  const base = '/sys/fs/cgroup';
  if (existsSync(join(base, 'cgroup.controllers'))) return [base];
  try {
    return readdirSync(base).map((entry) => join(base, entry));
  } catch {
    return [];
  }
}

export class Containerd {
  readonly namespace: string;
  readonly dir: string;
  readonly socket: string;
  readonly rootfs: string;
  readonly installDir: string;
  readonly cacheDir: string;
  readonly fifoDir: string;
  readonly conflistPath: string;
  private daemon: ResultPromise | undefined;
  private readonly cgroups: string[] = [];
  private readonly containers: string[] = [];
  private mountScript = '';

  constructor(private readonly sandbox: Sandbox) {
    this.namespace = `trestle-${sandbox.id}`;
    this.dir = join(sandbox.dir, 'containerd');
    this.socket = join(this.dir, 'containerd.sock');
    this.rootfs = join(this.dir, 'rootfs');
    this.installDir = join(sandbox.dir, 'install');
    this.cacheDir = join(this.dir, 'cni-cache');
    this.fifoDir = join(this.dir, 'fifo');
    this.conflistPath = join(this.installDir, cniConfDir, '10-trestle.conflist');
  }

  // What `make install` put in CNI_CONF_DIR, as ctr will read it.
  readConflist(): Json {
    return JSON.parse(readFileSync(this.conflistPath, 'utf8')) as Json;
  }

  writeConflist(list: Json): void {
    writeFileSync(this.conflistPath, `${JSON.stringify(list, null, 2)}\n`);
  }

  // Trestle as an operator installs it, into the sandbox's directory. The directories
  // are pinned because ctr's are fixed, and the launchers find their bundles relative
  // to themselves, so the whole of /opt/cni moves together.
  async install(): Promise<void> {
    const outcome = await execa(
      'make',
      ['--no-print-directory', '-C', repoRoot, 'install', `DESTDIR=${this.installDir}`, `CNI_BIN_DIR=${cniBinDir}/bin`, `CNI_CONF_DIR=${cniConfDir}`, `TRESTLE_LIB_DIR=${cniBinDir}/lib/trestle`, 'INSTALL_FORM=script'],
      { reject: false, all: true },
    );
    if (outcome.exitCode !== 0) throw new Error(`make install failed: ${String(outcome.all).slice(-2000)}`);
  }

  // A busybox-only root filesystem: ctr --rootfs runs it as is, so no image has to be
  // built, imported or pulled.
  makeRootfs(): void {
    mkdirSync(join(this.rootfs, 'bin'), { recursive: true });
    copyFileSync('/bin/busybox', join(this.rootfs, 'bin', 'busybox'));
  }

  async start(): Promise<void> {
    for (const sub of ['root', 'state', 'opt', 'run', 'fifo', 'cni-cache', 'overlay']) mkdirSync(join(this.dir, sub), { recursive: true, mode: 0o700 });
    const config = join(this.dir, 'config.toml');
    writeFileSync(
      config,
      [
        'version = 2',
        `root = ${JSON.stringify(join(this.dir, 'root'))}`,
        `state = ${JSON.stringify(join(this.dir, 'state'))}`,
        // ctr drives CNI itself; the CRI plugin would want its own.
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        '[grpc]',
        `  address = ${JSON.stringify(this.socket)}`,
        '[ttrpc]',
        `  address = ${JSON.stringify(`${this.socket}.ttrpc`)}`,
        // Its default, /opt/containerd, is created at start-up.
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = ${JSON.stringify(join(this.dir, 'opt'))}`,
        '',
      ].join('\n'),
    );
    // nsenter, not `ip netns exec`: the latter mounts a fresh sysfs over /sys, which
    // hides the cgroup mounts and runc then fails with "no cgroup mount found in
    // mountinfo". The private mount namespace gets its own /run, because the shims put
    // their sockets under /run/containerd/s and runc its state under
    // /run/containerd/runc whatever the configuration says; any mount made there dies
    // with the daemon and its shims.
    const script = 'mount --bind "$1" /run && exec containerd --config "$2"';
    this.daemon = execa('nsenter', [`--net=${this.sandbox.nodePath}`, 'unshare', '--mount', '--propagation', 'slave', 'sh', '-c', script, 'sh', join(this.dir, 'run'), config], {
      // containerd hands its environment to the plugins: the sandbox's daemon socket.
      env: this.sandbox.pluginEnvironment(),
      reject: false,
      stdin: 'ignore',
      stdout: 'ignore',
      stderr: { file: join(this.dir, 'containerd.log') },
    });
    this.mountScript = this.ctrMountScript();
    for (let attempt = 0; attempt < 100; attempt++) {
      if (this.daemon.exitCode !== null) break;
      const version = await execa('ctr', ['--address', this.socket, 'version'], { reject: false });
      if (version.exitCode === 0) return;
      await sleep(100);
    }
    throw new Error(`containerd did not start: ${this.log().slice(-2000)}`);
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, 'containerd.log'), 'utf8');
    } catch {
      return '';
    }
  }

  // ctr reads fixed paths, so each call gets a throwaway mount namespace in which the
  // sandbox's installation, configuration and cache are mounted over them. Each one is
  // mounted inside an overlay of a stable parent (upper layer on a tmpfs of this
  // namespace): a missing mount point is then made without creating anything on the
  // machine, and our mounts survive another test removing the machine's
  // /var/lib/cni or /etc/cni meanwhile (which would otherwise detach a bind made
  // directly on it, and send libcni's cache writes to the machine).
  private ctrMountScript(): string {
    const overlays = join(this.dir, 'overlay');
    const lines = ['set -e', `mount -t tmpfs -o mode=0700 tmpfs ${quote(overlays)}`];
    const mounts: Array<{ source: string; target: string; parent: string }> = [
      { source: join(this.installDir, cniBinDir), target: cniBinDir, parent: '/opt' },
      { source: join(this.installDir, cniConfDir), target: cniConfDir, parent: '/etc' },
      { source: this.cacheDir, target: cniCacheDir, parent: '/var/lib' },
    ];
    mounts.forEach(({ source, target, parent }, index) => {
      const upper = join(overlays, String(index), 'upper');
      const work = join(overlays, String(index), 'work');
      lines.push(
        `mkdir -p ${quote(upper)} ${quote(work)}`,
        `mount -t overlay overlay -o ${quote(`lowerdir=${parent},upperdir=${upper},workdir=${work}`)} ${quote(parent)}`,
        `mkdir -p ${quote(target)}`,
        `mount --bind ${quote(source)} ${quote(target)}`,
      );
    });
    lines.push(`exec ctr --address ${quote(this.socket)} --namespace ${quote(this.namespace)} "$@"`);
    return lines.join('\n');
  }

  private ctrArgs(args: readonly string[]): string[] {
    return ['--mount', '--propagation', 'private', 'sh', '-c', this.mountScript, 'sh', ...args];
  }

  ctr(args: readonly string[]): Promise<Result> {
    return this.sandbox.exec(this.sandbox.node, 'unshare', this.ctrArgs(args), { reject: false }) as Promise<Result>;
  }

  // `ctr run --cni` in the foreground: ctr 1.6 calls CNI DEL only there, once the task
  // has exited (a detached container's network is never deleted by ctr). The cgroup is
  // named so that teardown can find it.
  runArgs(name: string, command: readonly string[]): string[] {
    const cgroup = `/${this.namespace}-${name}`;
    this.cgroups.push(cgroup);
    this.containers.push(name);
    return ['run', '--cni', '--rm', '--fifo-dir', this.fifoDir, '--cgroup', cgroup, '--rootfs', this.rootfs, name, ...command];
  }

  run(name: string, command: readonly string[]): Promise<Result> {
    return this.ctr(this.runArgs(name, command));
  }

  // Ended by PID in the sandbox's teardown if it is still running.
  spawnRun(name: string, command: readonly string[]): ResultPromise {
    return this.sandbox.spawn(this.sandbox.node, 'unshare', this.ctrArgs(this.runArgs(name, command)));
  }

  exec(name: string, execId: string, command: readonly string[]): Promise<Result> {
    return this.ctr(['task', 'exec', '--fifo-dir', this.fifoDir, '--exec-id', execId, name, ...command]);
  }

  async taskStatus(name: string): Promise<string | undefined> {
    const listing = await this.ctr(['task', 'ls']);
    const line = String(listing.stdout)
      .split('\n')
      .find((entry) => entry.split(/\s+/)[0] === name);
    return line?.trim().split(/\s+/)[2];
  }

  async waitForStatus(name: string, status: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if ((await this.taskStatus(name)) === status) return;
      await sleep(100);
    }
    throw new Error(`task ${name} never reached ${status}; containerd log: ${this.log().slice(-2000)}`);
  }

  async listIds(kind: 'containers' | 'tasks'): Promise<string[]> {
    const listing = await this.ctr([kind, 'ls', '-q']);
    return String(listing.stdout).split('\n').filter((line) => line.trim() !== '');
  }

  private ownShims(): number[] {
    return shimsOf(this.socket);
  }

  // Processes still in the cgroups our containers were given.
  private cgroupMembers(): number[] {
    const pids = new Set<number>();
    for (const root of cgroupRoots()) {
      for (const cgroup of this.cgroups) {
        try {
          for (const line of readFileSync(join(root, cgroup, 'cgroup.procs'), 'utf8').split('\n')) if (line.trim() !== '') pids.add(Number(line));
        } catch {
          // Not in this hierarchy, or already removed.
        }
      }
    }
    return [...pids];
  }

  // Runs before the sandbox is destroyed, whatever state the test left: tasks and
  // containers through containerd while it is up, then the daemon (SIGTERM, then
  // SIGKILL), then anything of ours that outlived it, then the cgroups.
  async stop(): Promise<void> {
    const daemon = this.daemon;
    if (daemon?.pid !== undefined && daemon.exitCode === null) {
      for (const name of this.containers) {
        await this.ctr(['task', 'kill', '--signal', 'SIGKILL', name]);
        await this.ctr(['task', 'delete', '--force', name]);
        await this.ctr(['container', 'delete', name]);
      }
      killAll([daemon.pid], 'SIGTERM');
      for (let waited = 0; waited < 100 && daemon.exitCode === null; waited++) await sleep(100);
      if (daemon.exitCode === null) killAll([daemon.pid], 'SIGKILL');
      await daemon;
    }
    killAll([...this.ownShims(), ...this.cgroupMembers()], 'SIGKILL');
    for (let waited = 0; waited < 50 && [...this.ownShims(), ...this.cgroupMembers()].some(alive); waited++) await sleep(100);
    for (const root of cgroupRoots()) {
      for (const cgroup of this.cgroups) {
        try {
          rmdirSync(join(root, cgroup));
        } catch {
          // Never created in this hierarchy, or removed by runc.
        }
      }
    }
  }
}
