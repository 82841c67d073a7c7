// Drives a real podman (Debian's 4.x, CNI backend) with a Trestle network for
// test/runtimes/podman.test.ts. Unlike a Sandbox this cannot stay inside namespaces of
// its own: podman runs the plugins in the machine's root network namespace, so the
// bridge, the veths, the nft table `inet trestle` and ip_forward there are touched.
// Everything podman could leave behind is kept in one temporary directory (storage,
// runtime state, locks, events, runc state, IPAM store, firewall state) or recorded
// before the test and restored in teardown, even when the test failed.
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, execaSync } from 'execa';
import { readSysctl } from '../../src/host/sysctl.js';
import { ChainRunner, type ConfList } from '../../src/runtime/chain.js';
import { referenceBin, repoRoot, residentMode, startDaemonProcess, trestleBin, type Teardownable } from '../../src/sandbox/sandbox.js';
import { findProgram } from './programs.js';

export const podmanConflist = join(repoRoot, 'conf', 'podman', 'trestle-podman.conflist');

// libcni's default cache: podman 4.x gives it no directory of its own.
const libcniCache = '/var/lib/cni';
const libcniResults = join(libcniCache, 'results');
// runc's default state root, which the wrapper below replaces.
const runcDefaultRoot = '/run/runc';


export interface Container {
  name: string;
  id: string;
  address: string;
  sandboxKey: string;
}

interface Json {
  [key: string]: any;
}


// Mount points from /proc/self/mountinfo, with their filesystem type.
function mounts(): Array<{ point: string; type: string }> {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const fields = line.split(' ');
      const separator = fields.indexOf('-');
      const point = (fields[4] ?? '').replace(/\\(\d{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
      return { point, type: fields[separator + 1] ?? '' };
    });
}

// The store's address files; last_reserved_ip.N and lock files are not addresses.
function isAddress(name: string): boolean {
  return /^[0-9a-f.:]+$/i.test(name) && /[.:]/.test(name);
}

export class PodmanNode {
  readonly id = randomBytes(3).toString('hex');
  // ≤ 15 characters (IFNAMSIZ) and unlike any bridge a real runtime would create.
  readonly bridge = `trp${this.id}`;
  readonly network = `trestle-podman-${this.id}`;
  readonly cgroupParent = `/trestle-podman-${this.id}`;
  readonly dir = mkdtempSync(join(tmpdir(), `trestle-podman-${this.id}-`));
  readonly dataDir = join(this.dir, 'ipam');
  readonly stateDir = join(this.dir, 'state');
  readonly rootfs = join(this.dir, 'rootfs');
  readonly configDir = join(this.dir, 'net.d');
  // execa strips the final newline of what wget prints, so the page has none to lose.
  readonly page = `hello from podman ${this.id}`;
  readonly containers: Container[] = [];
  readonly env: Record<string, string>;
  subnetPrefix = '';
  hostPort = 0;
  list: ConfList = { cniVersion: '', name: '', plugins: [] };
  private readonly containerIds: string[] = [];
  private daemon: number | undefined;
  private readonly before = {
    ipForward: readSysctl('/proc/sys/net/ipv4/ip_forward'),
    ipv6Forwarding: readSysctl('/proc/sys/net/ipv6/conf/all/forwarding'),
    libcniCache: existsSync(libcniCache),
    libcniResults: existsSync(libcniResults),
    runcRoot: existsSync(runcDefaultRoot),
    table: true,
  };

  private constructor(private readonly podmanPath: string) {
    // podman hands its environment to the plugins: they forward to this test's own
    // daemon socket (a daemon there only in resident mode), never to one of the machine's.
    this.env = { CONTAINERS_CONF: join(this.dir, 'containers.conf'), CONTAINERS_STORAGE_CONF: join(this.dir, 'storage.conf'), TRESTLE_SOCKET: join(this.dir, 'trestled.sock') };
  }

  static async create(t: Teardownable, podmanPath: string): Promise<PodmanNode> {
    const node = new PodmanNode(podmanPath);
    node.before.table = (await execa('nft', ['list', 'table', 'inet', 'trestle'], { reject: false })).exitCode === 0;
    t.teardown(() => node.destroy());
    // podman runs its plugins in the machine's namespace by design; in resident mode
    // the daemon that does their work must run there too.
    if (residentMode()) node.daemon = await startDaemonProcess(node.env['TRESTLE_SOCKET'] as string, join(node.dir, 'daemon.log'));
    await node.chooseSubnetAndPort();
    node.writeRootfs();
    node.writeConfiguration();
    return node;
  }

  get subnet(): string {
    return `${this.subnetPrefix}.0/24`;
  }

  // A /24 and a host port nothing on this machine uses, so that the test neither
  // shadows a real network nor captures a real service's port with its DNAT.
  private async chooseSubnetAndPort(): Promise<void> {
    const routes = String((await execa('ip', ['-4', 'route', 'show', 'table', 'all'])).stdout);
    const addresses = String((await execa('ip', ['-4', '-o', 'addr'])).stdout);
    const table = String((await execa('nft', ['list', 'table', 'inet', 'trestle'], { reject: false })).stdout);
    for (let attempt = 0; attempt < 50 && this.subnetPrefix === ''; attempt++) {
      const prefix = `10.191.${randomBytes(1)[0] as number}`;
      const pattern = new RegExp(`\\b${prefix.replace(/\./g, '\\.')}\\.`);
      if (!pattern.test(routes) && !pattern.test(addresses) && !pattern.test(table)) this.subnetPrefix = prefix;
    }
    if (this.subnetPrefix === '') throw new Error('no free 10.191.x.0/24 on this machine');
    const usedPorts = new Set<number>();
    for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
      for (const line of (existsSync(file) ? readFileSync(file, 'utf8') : '').split('\n').slice(1)) {
        const local = line.trim().split(/\s+/)[1];
        if (local) usedPorts.add(parseInt(local.split(':').pop() ?? '0', 16));
      }
    }
    for (let attempt = 0; attempt < 100 && this.hostPort === 0; attempt++) {
      const port = 20000 + (randomBytes(2).readUInt16BE(0) % 10000);
      if (!usedPorts.has(port) && !new RegExp(`\\b${port}\\b`).test(table)) this.hostPort = port;
    }
    if (this.hostPort === 0) throw new Error('no free host port in 20000-29999');
  }

  // No image can be pulled, and `podman import` would write the machine-wide
  // /var/lib/containers/cache/blob-info-cache-v1.boltdb: the containers run from a
  // directory (`--rootfs`) holding a static busybox and its applet links.
  private writeRootfs(): void {
    const busybox = findProgram('busybox');
    if (busybox === undefined) throw new Error('busybox not found; install busybox-static (scripts/install-deps.sh)');
    mkdirSync(join(this.rootfs, 'bin'), { recursive: true });
    copyFileSync(busybox, join(this.rootfs, 'bin', 'busybox'));
    const applets = String(execaSync(busybox, ['--list-full']).stdout).split('\n');
    for (const applet of applets) {
      if (applet === '' || applet === 'bin/busybox') continue;
      mkdirSync(join(this.rootfs, dirname(applet)), { recursive: true });
      if (!existsSync(join(this.rootfs, applet))) symlinkSync('/bin/busybox', join(this.rootfs, applet));
    }
    mkdirSync(join(this.rootfs, 'www'));
    writeFileSync(join(this.rootfs, 'www', 'index.html'), `${this.page}\n`);
  }

  private writeConfiguration(): void {
    const runc = findProgram('runc');
    if (runc === undefined) throw new Error('runc not found; install runc (scripts/install-deps.sh --tests)');
    // runc keeps its state in the machine-wide /run/runc unless given --root, and
    // podman's --runtime-flag does not reach every call (`podman rm` and conmon's exit
    // command ran runc without it): a wrapper as the runtime gives it to all of them.
    const wrapper = join(this.dir, 'bin', 'runc');
    mkdirSync(dirname(wrapper));
    writeFileSync(wrapper, `#!/bin/sh\nexec ${runc} --root ${join(this.dir, 'runc')} "$@"\n`, { mode: 0o755 });
    const hardNofile = String(execaSync('sh', ['-c', 'ulimit -Hn']).stdout).trim();
    const toml = (value: string) => JSON.stringify(value);
    writeFileSync(
      this.env['CONTAINERS_CONF'] as string,
      [
        '[containers]',
        // Podman's default nofile/nproc limits exceed what this machine lets root set:
        // "setrlimit ... Operation not permitted".
        `default_ulimits = [${toml(`nofile=${hardNofile}:${hardNofile}`)}, "nproc=4096:4096"]`,
        '[network]',
        'network_backend = "cni"',
        `network_config_dir = ${toml(this.configDir)}`,
        `cni_plugin_dirs = [${toml(trestleBin)}, ${toml(referenceBin)}]`,
        '[engine]',
        // crun: "cgroups in hybrid mode not supported".
        'runtime = "runc"',
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        // shm locks would live in the machine-wide /dev/shm/libpod_lock.
        'lock_type = "file"',
        `tmp_dir = ${toml(join(this.dir, 'libpod'))}`,
        `static_dir = ${toml(join(this.dir, 'storage', 'libpod'))}`,
        `volume_path = ${toml(join(this.dir, 'storage', 'volumes'))}`,
        '[engine.runtimes]',
        `runc = [${toml(wrapper)}]`,
        '',
      ].join('\n'),
    );
    writeFileSync(
      this.env['CONTAINERS_STORAGE_CONF'] as string,
      ['[storage]', 'driver = "vfs"', `graphroot = ${toml(join(this.dir, 'storage'))}`, `runroot = ${toml(join(this.dir, 'run'))}`, ''].join('\n'),
    );
    const example = JSON.parse(readFileSync(podmanConflist, 'utf8')) as ConfList;
    const plugins = example.plugins.map((plugin) => {
      if (plugin['type'] === 'trestle-bridge') {
        const ipam = { ...(plugin['ipam'] as Json), dataDir: this.dataDir, ranges: [[{ subnet: this.subnet, gateway: `${this.subnetPrefix}.1` }]] };
        return { ...plugin, bridge: this.bridge, stateDir: this.stateDir, ipam };
      }
      return { ...plugin, stateDir: this.stateDir };
    });
    this.list = { ...example, name: this.network, plugins };
    mkdirSync(this.configDir);
    writeFileSync(join(this.configDir, `${this.network}.conflist`), `${JSON.stringify(this.list, null, 2)}\n`);
  }

  podman(args: readonly string[], options: { reject?: boolean } = {}) {
    return execa(this.podmanPath, args, { env: this.env, reject: options.reject ?? true, stdin: 'ignore', timeout: 60_000 });
  }

  // Podman drops, without a word, a conflist whose plugins do not all answer VERSION
  // with its cniVersion; `podman run --network` then says the network is not found.
  async networkListed(): Promise<boolean> {
    const names = String((await this.podman(['network', 'ls', '--format', '{{.Name}}'])).stdout).split('\n');
    return names.includes(this.network);
  }

  async run(name: string, options: { publish?: string; ip?: string }, command: readonly string[]): Promise<Container> {
    const args = ['run', '-d', '--name', `${name}-${this.id}`, '--network', this.network, '--cgroup-parent', this.cgroupParent];
    if (options.publish !== undefined) args.push('-p', options.publish);
    if (options.ip !== undefined) args.push('--ip', options.ip);
    const outcome = await this.podman([...args, '--rootfs', this.rootfs, ...command], { reject: false });
    if (outcome.exitCode !== 0) throw new Error(`podman run ${name}: ${String(outcome.stderr)}`);
    const id = String(outcome.stdout).trim();
    this.containerIds.push(id);
    const [inspected] = JSON.parse(String((await this.podman(['inspect', '--format', 'json', id])).stdout)) as Json[];
    const settings = (inspected?.['NetworkSettings'] ?? {}) as Json;
    const container: Container = { name, id, address: String(settings['Networks']?.[this.network]?.['IPAddress'] ?? ''), sandboxKey: String(settings['SandboxKey'] ?? '') };
    this.containers.push(container);
    return container;
  }

  // busybox wget (its -T segfaults in Debian's 1.35, so `timeout` bounds it), retried
  // while the server starts; undefined when it never answers.
  async fetchFromNode(url: string, attempts = 20): Promise<string | undefined> {
    const busybox = findProgram('busybox') ?? 'busybox';
    for (let attempt = 0; attempt < attempts; attempt++) {
      const outcome = await execa('timeout', ['4', busybox, 'wget', '-q', '-O-', url], { reject: false, stdin: 'ignore' });
      if (outcome.exitCode === 0) return String(outcome.stdout);
      if (attempt < attempts - 1) await sleep(250);
    }
    return undefined;
  }

  async fetchIn(container: Container, url: string, attempts = 10): Promise<string | undefined> {
    for (let attempt = 0; attempt < attempts; attempt++) {
      const outcome = await this.podman(['exec', container.id, 'timeout', '4', 'wget', '-q', '-O-', url], { reject: false });
      if (outcome.exitCode === 0) return String(outcome.stdout);
      if (attempt < attempts - 1) await sleep(250);
    }
    return undefined;
  }

  async pingIn(container: Container, address: string): Promise<boolean> {
    const outcome = await this.podman(['exec', container.id, 'ping', '-c', '1', '-W', '2', address], { reject: false });
    return outcome.exitCode === 0;
  }

  // The addresses the IPAM store holds, each with the container ID it belongs to.
  reservations(): Map<string, string> {
    const dir = join(this.dataDir, this.network);
    const held = new Map<string, string>();
    if (!existsSync(dir)) return held;
    for (const name of readdirSync(dir).filter(isAddress)) held.set(name, readFileSync(join(dir, name), 'utf8').split(/\r?\n/)[0] ?? '');
    return held;
  }

  // Files the plugins keep per container in their stateDir.
  stateFiles(): string[] {
    if (!existsSync(this.stateDir)) return [];
    return (readdirSync(this.stateDir, { recursive: true, withFileTypes: true }) as Array<{ isFile(): boolean; name: string; parentPath?: string; path?: string }>)
      .filter((entry) => entry.isFile())
      .map((entry) => join(entry.parentPath ?? entry.path ?? '', entry.name));
  }

  private stateOwners(): string[] {
    return this.stateFiles().flatMap((file) => {
      try {
        return [String((JSON.parse(readFileSync(file, 'utf8')) as Json)['containerId'])];
      } catch {
        return [];
      }
    });
  }

  async hostVeths(): Promise<string[]> {
    const outcome = await execa('ip', ['-j', 'link', 'show', 'master', this.bridge], { reject: false });
    if (outcome.exitCode !== 0 || String(outcome.stdout).trim() === '') return [];
    return (JSON.parse(String(outcome.stdout)) as Json[]).map((link) => String(link['ifname']));
  }

  // Every element of every set and map in `inet trestle`: as nft prints it in JSON
  // (text) and as nft syntax for `delete element` (key).
  async tableElements(): Promise<Array<{ set: string; text: string; key: string }>> {
    const outcome = await execa('nft', ['-j', 'list', 'table', 'inet', 'trestle'], { reject: false });
    if (outcome.exitCode !== 0) return [];
    const parsed = JSON.parse(String(outcome.stdout)) as { nftables: Json[] };
    return parsed.nftables.flatMap((item) => {
      const body = (item['set'] ?? item['map']) as Json | undefined;
      const set = String(body?.['name']);
      return ((body?.['elem'] ?? []) as unknown[]).map((element) => ({ set, text: `${set}: ${JSON.stringify(element)}`, key: nftKey(element) }));
    });
  }

  // The elements that name one of this test's containers: an address, the host port,
  // or the network/container ID comment portmap writes.
  async elementsOfOurs(): Promise<string[]> {
    return (await this.ourElements()).map((element) => element.text);
  }

  private async ourElements(): Promise<Array<{ set: string; text: string; key: string }>> {
    const needles = [
      ...this.containers.map((container) => new RegExp(`"${container.address.replace(/\./g, '\\.')}"`)),
      new RegExp(`"${this.subnetPrefix.replace(/\./g, '\\.')}\\.`),
      new RegExp(`\\b${this.hostPort}\\b`),
      new RegExp(this.network),
    ];
    return (await this.tableElements()).filter((element) => needles.some((needle) => needle.test(element.text)));
  }

  libcniCacheFiles(): string[] {
    if (!existsSync(libcniResults)) return [];
    return readdirSync(libcniResults).filter((name) => name.startsWith(`${this.network}-`));
  }

  async destroy(): Promise<void> {
    const problems: string[] = [];
    const step = async (what: string, action: () => unknown) => {
      try {
        await action();
      } catch (error) {
        problems.push(`${what}: ${(error as Error).message}`);
      }
    };
    if (this.daemon !== undefined) await step('stop the daemon', () => process.kill(this.daemon as number, 'SIGKILL'));

    await step('podman rm', async () => {
      if (!existsSync(this.env['CONTAINERS_CONF'] as string)) return;
      const outcome = await this.podman(['rm', '--all', '--force', '--time', '0'], { reject: false });
      if (outcome.exitCode !== 0) throw new Error(String(outcome.stderr));
    });
    await step('stray processes', () => this.killStrayProcesses());
    await step('container namespaces', async () => {
      for (const { sandboxKey } of this.containers) {
        if (sandboxKey === '' || !existsSync(sandboxKey)) continue;
        if (dirname(sandboxKey) === '/run/netns') await execa('ip', ['netns', 'del', sandboxKey.slice('/run/netns/'.length)]);
        else {
          await execa('umount', [sandboxKey], { reject: false });
          unlinkSync(sandboxKey);
        }
      }
    });
    // When podman could not DEL, the plugins' own DEL (idempotent, and fine without
    // the namespace or prevResult) knows which store entries and elements were theirs;
    // the store and the state files name containers whose `podman run` failed.
    await step('DEL without podman', () => {
      if (this.reservations().size === 0 && this.stateFiles().length === 0) return;
      const owners = new Set([...this.containerIds, ...this.reservations().values(), ...this.stateOwners()]);
      const runner = new ChainRunner({ pluginDirs: [trestleBin, referenceBin] });
      const failures: string[] = [];
      for (const containerId of owners) {
        const netns = this.containers.find((container) => container.id === containerId)?.sandboxKey ?? '';
        // One plugin at a time: a failing portmap DEL must not keep the bridge's from running.
        for (const plugin of [...this.list.plugins].reverse()) {
          try {
            runner.invoke(String(plugin['type']), 'DEL', { ...plugin, cniVersion: this.list.cniVersion, name: this.list.name }, { containerId, netns, ifname: 'eth0' });
          } catch (error) {
            failures.push(`${String(plugin['type'])} DEL ${containerId}: ${(error as Error).message}`);
          }
        }
      }
      if (failures.length > 0) throw new Error(failures.join('; '));
    });
    await step('links', async () => {
      for (const veth of await this.hostVeths()) await execa('ip', ['link', 'del', veth], { reject: false });
      const exists = await execa('ip', ['link', 'show', this.bridge], { reject: false });
      if (exists.exitCode === 0) await execa('ip', ['link', 'del', this.bridge]);
    });
    await step('nft table inet trestle', async () => {
      const leftovers = await this.ourElements();
      for (const element of leftovers) await execa('nft', ['delete', 'element', 'inet', 'trestle', element.set, `{ ${element.key} }`], { reject: false });
      if (!this.before.table && (await execa('nft', ['list', 'table', 'inet', 'trestle'], { reject: false })).exitCode === 0) {
        const elements = await this.tableElements();
        if (elements.length === 0) await execa('nft', ['delete', 'table', 'inet', 'trestle']);
        else throw new Error(`left in place, it holds elements not of this test: ${elements.map((element) => element.text).join(', ')}`);
      }
      if (leftovers.length > 0) throw new Error(`deleted by hand, the plugins left them: ${leftovers.map((element) => element.text).join(', ')}`);
    });
    await step('sysctls', () => {
      const restore = (path: string, value: string | undefined) => {
        if (value !== undefined && readSysctl(path) !== value) writeFileSync(path, value);
      };
      restore('/proc/sys/net/ipv4/ip_forward', this.before.ipForward);
      restore('/proc/sys/net/ipv6/conf/all/forwarding', this.before.ipv6Forwarding);
    });
    await step('libcni cache', () => {
      for (const name of this.libcniCacheFiles()) unlinkSync(join(libcniResults, name));
      if (!this.before.libcniResults) removeIfEmpty(libcniResults);
      if (!this.before.libcniCache) removeIfEmpty(libcniCache);
      if (!this.before.runcRoot) removeIfEmpty(runcDefaultRoot);
    });
    await step('cgroups', () => this.removeCgroups());
    await step('mounts', async () => {
      const inside = mounts()
        .map((mount) => mount.point)
        .filter((point) => point.startsWith(`${this.dir}/`))
        .sort((a, b) => b.length - a.length);
      for (const point of inside) await execa('umount', ['-l', point], { reject: false });
    });
    await step('temporary directory', () => rmSync(this.dir, { recursive: true, force: true }));
    if (problems.length > 0) throw new Error(`podman teardown: ${problems.join('; ')}`);
  }

  // This test's cgroup directories in every hierarchy, children first.
  private cgroupDirs(): string[] {
    const tree = (dir: string): string[] => [
      ...readdirSync(dir, { withFileTypes: true })
        .filter((entry) => entry.isDirectory())
        .flatMap((entry) => tree(join(dir, entry.name))),
      dir,
    ];
    return mounts()
      .filter((mount) => mount.type === 'cgroup' || mount.type === 'cgroup2')
      .map((mount) => join(mount.point, this.cgroupParent))
      .filter((dir) => existsSync(dir))
      .flatMap(tree);
  }

  // What podman started and could not stop: conmon and `podman container cleanup`
  // name this test's directory on their command line, and the containers' processes
  // are in this test's cgroup. Each is ended by its PID.
  private async killStrayProcesses(): Promise<void> {
    const victims = new Set<number>();
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
      try {
        if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(this.dir)) victims.add(Number(entry));
      } catch {
        // Exited meanwhile.
      }
    }
    for (const dir of this.cgroupDirs()) {
      for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (pid !== '') victims.add(Number(pid));
    }
    for (const pid of victims) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    if (victims.size > 0) await sleep(200);
  }

  // With the cgroupfs manager, podman creates <parent>/libpod-<id> and <parent>/conmon
  // in every hierarchy and removes only the former.
  private async removeCgroups(): Promise<void> {
    for (const dir of this.cgroupDirs()) {
      for (let attempt = 0; ; attempt++) {
        try {
          rmdirSync(dir);
          break;
        } catch (error) {
          if (attempt >= 40) throw error;
          await sleep(50);
        }
      }
    }
  }
}

// An element of `nft -j` output as the key `delete element` takes: a map element is
// [key, value], a commented one {elem: {val}}, concatenations join with " . ".
function nftKey(expression: unknown): string {
  if (Array.isArray(expression)) return nftKey(expression[0]);
  if (typeof expression !== 'object' || expression === null) return String(expression);
  const node = expression as Json;
  if (node['elem'] !== undefined) return nftKey(node['elem']['val']);
  if (node['concat'] !== undefined) return (node['concat'] as unknown[]).map(nftKey).join(' . ');
  if (node['prefix'] !== undefined) return `${String(node['prefix']['addr'])}/${String(node['prefix']['len'])}`;
  if (node['range'] !== undefined) return `${nftKey(node['range'][0])}-${nftKey(node['range'][1])}`;
  return JSON.stringify(expression);
}

function removeIfEmpty(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // Absent, or someone else's files are in it.
  }
}
