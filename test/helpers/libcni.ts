// Builds and runs test/runtimes/libcni/main.go, a driver on libcni (the library inside
// containerd, CRI-O and podman), in a sandbox's node namespace: the plugins then see
// exactly the environment, stdin, capability injection, prevResult chaining and
// result parsing those runtimes give them.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { referenceBin, repoRoot, trestleBin, type Sandbox } from '../../src/sandbox/sandbox.js';
import { toOutcome, type Outcome } from './bridge.js';

export type Json = Record<string, any>;

export const driverSource = join(repoRoot, 'test', 'runtimes', 'libcni', 'main.go');
export const exampleConflist = join(repoRoot, 'conf', 'examples', 'containerd-dualstack.conflist');
// Debian's golang-github-appc-cni-dev; no network at build time, so GOPATH mode on it.
export const goPath = process.env['TRESTLE_LIBCNI_GOPATH'] ?? '/usr/share/gocode';
export const libcniSource = join(goPath, 'src', 'github.com', 'containernetworking', 'cni', 'libcni');

// Why the driver cannot be built here, or undefined when it can.
export async function missingToolchain(): Promise<string | undefined> {
  const go = await execa('go', ['version'], { reject: false });
  if (go.failed) return `no Go toolchain (\`go version\`: ${go.shortMessage ?? 'failed'}); install golang-go`;
  if (!existsSync(join(libcniSource, 'api.go'))) return `no libcni source at ${libcniSource}; install golang-github-appc-cni-dev`;
  return undefined;
}

function goEnvironment(cacheRoot: string): Record<string, string> {
  return {
    PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: process.env['HOME'] ?? tmpdir(),
    GO111MODULE: 'off',
    GOPATH: goPath,
    GOPROXY: 'off',
    // A GOFLAGS such as -mod=mod, or a user's go.env, is module-mode only and would
    // make a GOPATH build refuse to start.
    GOFLAGS: '',
    GOENV: 'off',
    GOTOOLCHAIN: 'local',
    // Static: the binary runs under `ip netns exec`, nothing to gain from cgo.
    CGO_ENABLED: '0',
    GOCACHE: join(cacheRoot, 'gocache'),
  };
}

// A cold build compiles the standard library (10 to 40 s on a busy machine), so the
// binary and Go's build cache are kept under the temporary directory, the binary keyed
// by everything it is made of; a warm run reuses it.
export async function buildDriver(): Promise<string> {
  const goVersion = String((await execa('go', ['version'])).stdout);
  const key = createHash('sha256')
    .update(readFileSync(driverSource))
    .update(goVersion)
    .update(readFileSync(join(libcniSource, 'api.go')))
    .update(readFileSync(join(libcniSource, 'conf.go')))
    .digest('hex')
    .slice(0, 16);
  const cacheRoot = join(tmpdir(), `trestle-libcni-${process.getuid?.() ?? 'user'}`);
  mkdirSync(cacheRoot, { recursive: true, mode: 0o700 });
  // We run this binary (and let Go reuse cached objects) as root: only trust a
  // directory that we own and nobody else can write.
  const info = statSync(cacheRoot);
  if (info.uid !== process.getuid?.() || (info.mode & 0o022) !== 0) throw new Error(`refusing to use ${cacheRoot}: not ours alone`);
  const binary = join(cacheRoot, `trestle-libcni-${key}`);
  if (existsSync(binary)) return binary;
  const partial = `${binary}.${process.pid}.partial`;
  const build = await execa('go', ['build', '-trimpath', '-o', partial, driverSource], { env: goEnvironment(cacheRoot), extendEnv: false, cwd: cacheRoot, reject: false });
  if (build.failed) throw new Error(`go build of ${driverSource} failed: ${String(build.stderr)}`);
  renameSync(partial, binary);
  return binary;
}

// The example conflist with this sandbox's IPAM store and firewall state, in the
// sandbox's directory; everything else as a runtime would read it from /etc/cni/net.d.
export function sandboxedConflist(sandbox: Sandbox, cniVersion: string): { path: string; list: Json } {
  const list = JSON.parse(readFileSync(exampleConflist, 'utf8')) as Json;
  list['cniVersion'] = cniVersion;
  for (const plugin of list['plugins'] as Json[]) {
    if (String(plugin['type']).startsWith('trestle-')) plugin['stateDir'] = sandbox.stateDir;
    if (plugin['ipam']) plugin['ipam'] = { ...plugin['ipam'], dataDir: sandbox.dataDir };
  }
  const path = join(sandbox.dir, `libcni-${cniVersion}.conflist`);
  writeFileSync(path, JSON.stringify(list, null, 2));
  return { path, list };
}

export function cacheDir(sandbox: Sandbox): string {
  return join(sandbox.dir, 'libcni-cache');
}

// Where libcni keeps an attachment's ADD result for CHECK and DEL.
export function cachedResultPath(sandbox: Sandbox, network: string, containerId: string, ifname = 'eth0'): string {
  return join(cacheDir(sandbox), 'results', `${network}-${containerId}-${ifname}`);
}

export interface DriverCall {
  containerId: string;
  netns: string;
  ifname?: string;
  capArgs?: Json;
  cniArgs?: string;
}

export type DriverOutcome = Outcome;

// One driver process in the node namespace, with PATH only: a runtime's plugins
// inherit little, and nothing of the test runner's environment should help them.
export async function runDriver(
  sandbox: Sandbox,
  driver: string,
  command: 'add' | 'check' | 'del' | 'validate',
  conflist: string,
  request?: DriverCall,
): Promise<DriverOutcome> {
  const args = ['-cni-path', `${trestleBin}:${referenceBin}`, '-cache-dir', cacheDir(sandbox)];
  if (request?.capArgs) args.push('-cap-args', JSON.stringify(request.capArgs));
  if (request?.cniArgs) args.push('-args', request.cniArgs);
  args.push(command, conflist);
  if (request) args.push(request.containerId, request.netns, request.ifname ?? 'eth0');
  const outcome = await execa('ip', ['netns', 'exec', sandbox.node, driver, ...args], {
    env: { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...sandbox.pluginEnvironment() },
    extendEnv: false,
    reject: false,
  });
  return toOutcome(outcome);
}

export function describeOutcome(outcome: DriverOutcome): string {
  return `exit ${outcome.exitCode}: ${outcome.stderr.trim() || outcome.stdout.trim().slice(0, 300)}`;
}
