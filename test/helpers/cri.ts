// The kubelet's path for test/runtimes/cri.test.ts: a private containerd 1.6 with its
// CRI plugin, driven over gRPC with the runtime.v1 calls a kubelet makes, and Trestle
// installed by `make install` as its CNI plugins. crictl and kubelet are not packaged
// in Debian 12, so the client is ours (test/runtimes/cri/runtime-v1.proto), and no
// image can be pulled, so the pod sandbox ("pause") image is built here.
//
// Where things live: containerd runs in the sandbox's node network namespace and in a
// mount namespace of its own, held by a process of ours so that it outlives a
// containerd killed with SIGKILL (the restarted daemon must see the pod namespaces it
// mounted, or it takes them for closed and never calls DEL). In that mount namespace
// /run is the sandbox's directory (shim sockets, runc state), /var/lib/cni (go-cni's
// result cache, which containerd 1.6 cannot move) is the sandbox's too, and
// /run/netns stays a peer of the machine's: the pod namespaces containerd mounts at
// /var/run/netns/cni-… are visible at that path outside, where the test and a
// resident `trestle daemon` open them, as a kubelet node's tools would.
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readSync, closeSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { execa, type ResultPromise } from 'execa';
import { repoRoot, type Sandbox } from '../../src/sandbox/sandbox.js';
import { alive, cgroupRoots, killAll, shimsOf } from './containerd.js';
import { findProgram } from './programs.js';

export type Json = Record<string, any>;

const busybox = '/bin/busybox';
// containerd's CRI plugin always loads a loopback network besides the conflist, and
// Trestle has no loopback plugin: the reference one is copied beside ours.
const loopback = '/usr/lib/cni/loopback';
const protoPath = join(repoRoot, 'test/runtimes/cri/runtime-v1.proto');

// A dynamically linked busybox would need a libc in the image.
function isStatic(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const header = Buffer.alloc(64);
    readSync(fd, header, 0, 64, 0);
    if (header.toString('latin1', 1, 4) !== 'ELF' || header[4] !== 2) return false;
    const phoff = Number(header.readBigUInt64LE(32));
    const phentsize = header.readUInt16LE(54);
    const phnum = header.readUInt16LE(56);
    const table = Buffer.alloc(phentsize * phnum);
    readSync(fd, table, 0, table.length, phoff);
    for (let index = 0; index < phnum; index++) if (table.readUInt32LE(index * phentsize) === 3) return false; // PT_INTERP
    return true;
  } finally {
    closeSync(fd);
  }
}

// Why the test cannot run here, or undefined when it can.
export function missingCri(): string | undefined {
  for (const program of ['containerd', 'ctr', 'runc', 'unshare', 'nsenter', 'findmnt']) {
    if (findProgram(program) === undefined) return `${program} is not installed (Debian: apt-get install containerd runc util-linux)`;
  }
  if (!existsSync(loopback)) return `${loopback} is missing (Debian: apt-get install containernetworking-plugins)`;
  if (!existsSync(busybox) || !isStatic(busybox)) return `${busybox} is not a static busybox (Debian: apt-get install busybox-static)`;
  return undefined;
}

// ---- the pause image: a one-layer docker-archive, written as tar by hand ----

interface TarEntry {
  name: string;
  data?: Buffer;
  mode: number;
}

function tarHeader(entry: TarEntry): Buffer {
  const header = Buffer.alloc(512);
  const text = (offset: number, length: number, value: string) => header.write(value, offset, length, 'latin1');
  const octal = (offset: number, length: number, value: number) => text(offset, length, `${value.toString(8).padStart(length - 1, '0')}\0`);
  const directory = entry.data === undefined;
  text(0, 100, entry.name);
  octal(100, 8, entry.mode);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, entry.data?.length ?? 0);
  // A fixed time: the same busybox gives the same layer digest on every run.
  octal(136, 12, 1_700_000_000);
  text(148, 8, '        ');
  text(156, 1, directory ? '5' : '0');
  text(257, 6, 'ustar\0');
  text(263, 2, '00');
  text(265, 32, 'root');
  text(297, 32, 'root');
  let sum = 0;
  for (const byte of header) sum += byte;
  text(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return header;
}

function tar(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    parts.push(tarHeader(entry));
    if (entry.data !== undefined) {
      parts.push(entry.data);
      const padding = (512 - (entry.data.length % 512)) % 512;
      parts.push(Buffer.alloc(padding));
    }
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

// Debian's static busybox as the whole root filesystem, running `sleep` as the pause
// process does nothing. Returns the archive's path (in `dir`).
export function buildPauseImage(dir: string, reference: string): string {
  const layer = tar([
    { name: 'bin/', mode: 0o755 },
    { name: 'bin/busybox', data: readFileSync(busybox), mode: 0o755 },
  ]);
  const diffId = sha256(layer);
  const architecture = ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', ia32: '386' } as Record<string, string>)[process.arch] ?? process.arch;
  const config = Buffer.from(
    JSON.stringify({
      architecture,
      os: 'linux',
      config: { Entrypoint: ['/bin/busybox', 'sleep', '3600'], WorkingDir: '/' },
      rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] },
      history: [{ created_by: 'test/helpers/cri.ts: Debian busybox-static' }],
    }),
  );
  const configName = `${sha256(config)}.json`;
  const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: [reference], Layers: [`${diffId}/layer.tar`] }]));
  const archive = join(dir, 'pause.tar');
  writeFileSync(
    archive,
    tar([
      { name: `${diffId}/`, mode: 0o755 },
      { name: `${diffId}/layer.tar`, data: layer, mode: 0o644 },
      { name: configName, data: config, mode: 0o644 },
      { name: 'manifest.json', data: manifest, mode: 0o644 },
    ]),
  );
  return archive;
}

// ---- the CRI client ----

export interface PortMapping {
  protocol: 'TCP' | 'UDP';
  containerPort: number;
  hostPort: number;
  hostIp?: string;
}

export interface PodSpec {
  name: string;
  namespace: string;
  uid: string;
  portMappings?: PortMapping[];
}

export interface PodStatus {
  id: string;
  state: 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
  metadata: { name: string; namespace: string; uid: string };
  network: { ip: string; additionalIps: Array<{ ip: string }> } | null;
}

export interface PodListItem {
  id: string;
  state: PodStatus['state'];
  metadata: PodStatus['metadata'];
}

type Callback = (error: grpc.ServiceError | null, response: unknown) => void;
type Method = (request: object, options: grpc.CallOptions, callback: Callback) => void;

const definition = protoLoader.loadSync(protoPath, { keepCase: false, longs: String, enums: String, defaults: true });
const runtimeService = (grpc.loadPackageDefinition(definition) as Json)['runtime']['v1']['RuntimeService'] as grpc.ServiceClientConstructor;

export class CriClient {
  private readonly client: grpc.Client;

  constructor(
    socket: string,
    private readonly cgroupParent: string,
  ) {
    this.client = new runtimeService(`unix://${socket}`, grpc.credentials.createInsecure());
  }

  private call<T>(name: string, request: object, timeoutMs: number): Promise<T> {
    const method = (this.client as unknown as Record<string, Method>)[name];
    if (method === undefined) throw new Error(`no RPC ${name}`);
    return new Promise((resolve, reject) => {
      method.call(this.client, request, { deadline: Date.now() + timeoutMs }, (error, response) => (error === null ? resolve(response as T) : reject(error)));
    });
  }

  version(timeoutMs = 2_000): Promise<{ runtimeName: string; runtimeVersion: string; runtimeApiVersion: string }> {
    return this.call('Version', { version: 'v1' }, timeoutMs);
  }

  async runPodSandbox(pod: PodSpec): Promise<string> {
    const config = {
      metadata: { name: pod.name, namespace: pod.namespace, uid: pod.uid, attempt: 0 },
      hostname: pod.name,
      portMappings: pod.portMappings ?? [],
      labels: { app: pod.name },
      linux: { cgroupParent: this.cgroupParent },
    };
    const response = await this.call<{ podSandboxId: string }>('RunPodSandbox', { config }, 60_000);
    return response.podSandboxId;
  }

  async status(id: string): Promise<{ status: PodStatus; info: Json }> {
    const response = await this.call<{ status: PodStatus; info: Record<string, string> }>('PodSandboxStatus', { podSandboxId: id, verbose: true }, 10_000);
    return { status: response.status, info: JSON.parse(response.info['info'] ?? '{}') as Json };
  }

  async stopPodSandbox(id: string): Promise<void> {
    await this.call('StopPodSandbox', { podSandboxId: id }, 60_000);
  }

  async removePodSandbox(id: string): Promise<void> {
    await this.call('RemovePodSandbox', { podSandboxId: id }, 60_000);
  }

  async list(): Promise<PodListItem[]> {
    const response = await this.call<{ items: PodListItem[] }>('ListPodSandbox', {}, 10_000);
    return response.items;
  }

  close(): void {
    this.client.close();
  }
}

// ---- the private containerd ----

// In the mount namespace the holder creates: every mount below is made under a mount
// that is private there first, so that none of them reaches the machine even where
// its mounts are shared (systemd); /run/netns keeps its peer group (see the top).
const holderScript = [
  'set -e',
  'run="$1" overlay="$2" cache="$3"',
  'for target in "$run/netns" "$overlay" /run /var/lib; do mount --make-private "$(findmnt -n -o TARGET --target "$target")"; done',
  'mount --bind /run/netns "$run/netns"',
  'mount --rbind "$run" /run',
  'mount -t tmpfs -o mode=0700 tmpfs "$overlay"',
  'mkdir -p "$overlay/upper" "$overlay/work"',
  // An overlay of /var/lib: /var/lib/cni can be made in it without creating anything
  // on the machine.
  'mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$overlay/upper,workdir=$overlay/work" /var/lib',
  'mkdir -p /var/lib/cni',
  'mount --bind "$cache" /var/lib/cni',
  'echo ready',
  'exec sleep infinity',
].join('\n');

export class CriContainerd {
  readonly dir: string;
  readonly socket: string;
  readonly installDir: string;
  readonly binDir: string;
  readonly confDir: string;
  readonly cacheDir: string;
  readonly cgroupParent: string;
  readonly imageReference = 'localhost/trestle-pause:test';
  // Every pod network namespace seen, for a teardown after a failure.
  readonly podNamespaces = new Set<string>();
  private readonly runDir: string;
  private readonly configPath: string;
  private holder: ResultPromise | undefined;
  private daemon: ResultPromise | undefined;
  private criClient: CriClient | undefined;

  constructor(private readonly sandbox: Sandbox) {
    this.dir = join(sandbox.dir, 'cri');
    this.socket = join(this.dir, 'containerd.sock');
    this.installDir = join(sandbox.dir, 'install');
    this.binDir = join(this.installDir, 'opt/cni/bin');
    this.confDir = join(this.dir, 'net.d');
    this.cacheDir = join(this.dir, 'cni-cache');
    this.runDir = join(this.dir, 'run');
    this.configPath = join(this.dir, 'config.toml');
    this.cgroupParent = `/trestle-cri-${sandbox.id}`;
  }

  get client(): CriClient {
    if (this.criClient === undefined) throw new Error('containerd is not started');
    return this.criClient;
  }

  get pid(): number | undefined {
    return this.daemon?.exitCode === null ? this.daemon.pid : undefined;
  }

  // Trestle as an operator installs it, into the sandbox's directory, with the
  // reference loopback beside it.
  async install(): Promise<void> {
    const outcome = await execa(
      'make',
      ['--no-print-directory', '-C', repoRoot, 'install', `DESTDIR=${this.installDir}`, 'CNI_BIN_DIR=/opt/cni/bin', 'CNI_CONF_DIR=/etc/cni/net.d', 'TRESTLE_LIB_DIR=/opt/cni/lib/trestle', 'INSTALL_FORM=script'],
      { reject: false, all: true },
    );
    if (outcome.exitCode !== 0) throw new Error(`make install failed: ${String(outcome.all).slice(-2000)}`);
    copyFileSync(loopback, join(this.binDir, 'loopback'));
    chmodSync(join(this.binDir, 'loopback'), 0o755);
  }

  writeConflist(list: Json): void {
    mkdirSync(this.confDir, { recursive: true });
    writeFileSync(join(this.confDir, '10-trestle.conflist'), `${JSON.stringify(list, null, 2)}\n`);
  }

  private writeConfig(): void {
    const cri = 'plugins."io.containerd.grpc.v1.cri"';
    writeFileSync(
      this.configPath,
      [
        'version = 2',
        `root = ${JSON.stringify(join(this.dir, 'root'))}`,
        `state = ${JSON.stringify(join(this.dir, 'state'))}`,
        '[grpc]',
        `  address = ${JSON.stringify(this.socket)}`,
        '[ttrpc]',
        `  address = ${JSON.stringify(`${this.socket}.ttrpc`)}`,
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = ${JSON.stringify(join(this.dir, 'opt'))}`,
        `[${cri}]`,
        `  sandbox_image = ${JSON.stringify(this.imageReference)}`,
        // These machines lack CAP_SYS_RESOURCE: without it the shim cannot lower its
        // score below containerd's.
        '  restrict_oom_score_adj = true',
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        `[${cri}.containerd]`,
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        `[${cri}.containerd.runtimes.runc]`,
        '  runtime_type = "io.containerd.runc.v2"',
        `[${cri}.cni]`,
        `  bin_dir = ${JSON.stringify(this.binDir)}`,
        `  conf_dir = ${JSON.stringify(this.confDir)}`,
        '  max_conf_num = 1',
        '',
      ].join('\n'),
    );
  }

  // The process that holds containerd's mount namespace; resolves once it is set up.
  private async startHolder(): Promise<void> {
    const overlay = join(this.dir, 'overlay');
    for (const path of [join(this.runDir, 'netns'), overlay, this.cacheDir]) mkdirSync(path, { recursive: true, mode: 0o700 });
    const holder = execa('unshare', ['--mount', '--propagation', 'unchanged', 'sh', '-c', holderScript, 'sh', this.runDir, overlay, this.cacheDir], { reject: false, stdin: 'ignore', buffer: false });
    this.holder = holder;
    await new Promise<void>((resolve, reject) => {
      let output = '';
      holder.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('ready')) resolve();
      });
      holder.stderr?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
      void holder.then(() => reject(new Error(`the mount namespace holder ended: ${output}`)));
    });
  }

  // containerd in the node namespace and the holder's mount namespace, with the
  // sandbox's plugin environment (containerd hands its environment to the plugins).
  // Resolves once the CRI plugin answers Version.
  async start(): Promise<void> {
    if (this.holder === undefined) {
      for (const sub of ['root', 'state', 'opt']) mkdirSync(join(this.dir, sub), { recursive: true, mode: 0o700 });
      this.writeConfig();
      await this.startHolder();
    }
    const holderPid = this.holder?.pid;
    if (holderPid === undefined) throw new Error('no mount namespace holder');
    this.daemon = execa('nsenter', [`--mount=/proc/${holderPid}/ns/mnt`, `--net=${this.sandbox.nodePath}`, 'containerd', '--config', this.configPath], {
      env: this.sandbox.pluginEnvironment(),
      reject: false,
      stdin: 'ignore',
      stdout: 'ignore',
      stderr: { file: join(this.dir, 'containerd.log'), append: true },
    });
    this.criClient?.close();
    this.criClient = new CriClient(this.socket, this.cgroupParent);
    let lastError = '';
    for (let attempt = 0; attempt < 150; attempt++) {
      if (this.daemon.exitCode !== null) break;
      try {
        await this.criClient.version();
        return;
      } catch (error) {
        lastError = String(error);
        await sleep(100);
      }
    }
    throw new Error(`containerd's CRI did not answer (${lastError}): ${this.log().slice(-2000)}`);
  }

  async importImage(archive: string): Promise<void> {
    const outcome = await execa('ctr', ['--address', this.socket, '--namespace', 'k8s.io', 'images', 'import', archive], { reject: false, all: true });
    if (outcome.exitCode !== 0) throw new Error(`ctr images import: ${String(outcome.all)}`);
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, 'containerd.log'), 'utf8');
    } catch {
      return '';
    }
  }

  // SIGKILL to containerd alone, by PID; its shims and pods go on running.
  async killDaemon(): Promise<void> {
    const daemon = this.daemon;
    if (daemon?.pid === undefined || daemon.exitCode !== null) throw new Error('containerd is not running');
    process.kill(daemon.pid, 'SIGKILL');
    await daemon;
  }

  // The pod's network namespace (/var/run/netns/cni-…) and its addresses, as
  // containerd reports them; the namespace is remembered for teardown.
  async pod(id: string): Promise<{ status: PodStatus; netns: string; pid: number }> {
    const { status, info } = await this.client.status(id);
    // containerd 1.6 reports the path only in the runtime spec it gave runc.
    const namespaces = (info['runtimeSpec']?.['linux']?.['namespaces'] ?? []) as Array<{ type: string; path?: string }>;
    const netns = namespaces.find((namespace) => namespace.type === 'network')?.path ?? '';
    if (netns !== '') this.podNamespaces.add(netns);
    return { status, netns, pid: Number(info['pid'] ?? 0) };
  }

  private ownShims(): number[] {
    return shimsOf(this.socket);
  }

  // The pods' cgroups (one per sandbox under our parent), deepest first.
  private cgroupDirs(): string[] {
    const dirs: string[] = [];
    for (const root of cgroupRoots()) {
      const parent = join(root, this.cgroupParent);
      try {
        for (const entry of readdirSync(parent, { withFileTypes: true })) if (entry.isDirectory()) dirs.push(join(parent, entry.name));
        dirs.push(parent);
      } catch {
        // Not in this hierarchy.
      }
    }
    return dirs;
  }

  private cgroupMembers(): number[] {
    const pids = new Set<number>();
    for (const dir of this.cgroupDirs()) {
      try {
        for (const line of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (line.trim() !== '') pids.add(Number(line));
      } catch {
        // Removed meanwhile.
      }
    }
    return [...pids];
  }

  // Runs before the sandbox is destroyed, whatever state the test left: pods through
  // the CRI while containerd is up (as a kubelet would), then containerd, its shims,
  // the pods' processes and the holder (so the mount namespace and every mount in it
  // go), then any pod namespace still mounted, then the cgroups.
  async stop(): Promise<void> {
    const daemon = this.daemon;
    if (daemon?.pid !== undefined && daemon.exitCode === null) {
      try {
        for (const pod of await this.client.list()) {
          await this.client.stopPodSandbox(pod.id).catch(() => undefined);
          await this.client.removePodSandbox(pod.id).catch(() => undefined);
        }
      } catch {
        // containerd is not answering: what it left is removed below.
      }
      killAll([daemon.pid], 'SIGTERM');
      for (let waited = 0; waited < 50 && daemon.exitCode === null; waited++) await sleep(100);
      if (daemon.exitCode === null) killAll([daemon.pid], 'SIGKILL');
      await daemon;
    }
    this.criClient?.close();
    killAll([...this.ownShims(), ...this.cgroupMembers()], 'SIGKILL');
    if (this.holder?.pid !== undefined && this.holder.exitCode === null) killAll([this.holder.pid], 'SIGKILL');
    await this.holder;
    for (let waited = 0; waited < 50 && [...this.ownShims(), ...this.cgroupMembers()].some(alive); waited++) await sleep(100);
    for (const netns of this.podNamespaces) {
      if (!existsSync(netns)) continue;
      await execa('umount', ['--lazy', netns], { reject: false });
      rmSync(netns, { force: true });
    }
    for (const dir of this.cgroupDirs()) {
      try {
        rmdirSync(dir);
      } catch {
        // Removed by runc, or still busy (reported by the test's own checks).
      }
    }
  }
}
