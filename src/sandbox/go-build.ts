// Builds the Go programs that drive plugins through libcni, the library inside
// containerd, CRI-O and podman: the tests' driver (test/runtimes/libcni) and the
// benchmark's (bench/libcni). Debian's golang-github-appc-cni-dev provides libcni; with
// no network at build time, the build runs in GOPATH mode on it.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

const goPath = process.env['TRESTLE_LIBCNI_GOPATH'] ?? '/usr/share/gocode';
const libcniSource = join(goPath, 'src', 'github.com', 'containernetworking', 'cni', 'libcni');

// Why a libcni program cannot be built here, or undefined when it can.
export async function goToolchainProblem(): Promise<string | undefined> {
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
    // Static: the binary runs in a sandbox's namespace, nothing to gain from cgo.
    CGO_ENABLED: '0',
    GOCACHE: join(cacheRoot, 'gocache'),
  };
}

// A cold build compiles the standard library (10 to 40 s on a busy machine), so the
// binary and Go's build cache are kept under the temporary directory, the binary keyed
// by everything it is made of; a warm run reuses it. `name` prefixes the binary's file.
export async function buildGoProgram(source: string, name: string): Promise<string> {
  const goVersion = String((await execa('go', ['version'])).stdout);
  const key = createHash('sha256')
    .update(readFileSync(source))
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
  const binary = join(cacheRoot, `${name}-${key}`);
  if (existsSync(binary)) return binary;
  const partial = `${binary}.${process.pid}.partial`;
  const build = await execa('go', ['build', '-trimpath', '-o', partial, source], { env: goEnvironment(cacheRoot), extendEnv: false, cwd: cacheRoot, reject: false });
  if (build.failed) throw new Error(`go build of ${source} failed: ${String(build.stderr)}`);
  renameSync(partial, binary);
  return binary;
}
