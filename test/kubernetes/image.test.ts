// `make image` as a node's containerd takes it: the archive is imported into a private
// containerd (test/helpers/containerd.ts: its own root, state and socket, in a sandbox's
// node namespace) with `ctr -n k8s.io images import`, as `kind load image-archive`
// does, and `trestle version` and `trestle install-cni` run from it with `ctr run`, the
// host's CNI directories bind-mounted as the DaemonSet mounts them. The plugins it
// installs then answer VERSION from those directories, with no daemon and no Node.js.
import { lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type Result } from 'execa';
import t from 'tap';
import { conflistName, defaultCniBinDir, defaultCniConfDir, trestleConflist } from '../../src/cli/install-cni.js';
import { repoRoot, Sandbox } from '../../src/sandbox/sandbox.js';
import { Containerd, missingContainerd } from '../helpers/containerd.js';

const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
const image = `localhost/trestle:${version}`;
const archive = join(repoRoot, 'dist/image/trestle.tar');
const plugins = ['trestle-bridge', 'trestle-host-local', 'trestle-portmap'];

const missing = await missingContainerd();
if (missing !== undefined) {
  // Loud: a skipped runtime test must not read as a pass in a CI log.
  process.stderr.write(`\n*** image test SKIPPED: ${missing} ***\n\n`);
  t.plan(0, `containerd cannot run: ${missing}`);
} else {
  run();
}

function describe(outcome: Result): string {
  return `exit ${String(outcome.exitCode)}: ${String(outcome.stdout).trim()} ${String(outcome.stderr).trim()}`.trim();
}

// runc removes a container's cgroup when ctr deletes it; this is for a run that failed
// half-way. cgroup v2's single root, or each v1 hierarchy.
function removeCgroup(cgroup: string): void {
  const base = '/sys/fs/cgroup';
  const roots = readdirSync(base).includes('cgroup.controllers') ? [base] : readdirSync(base).map((entry) => join(base, entry));
  for (const root of roots) {
    try {
      rmdirSync(join(root, cgroup));
    } catch {
      // Not there.
    }
  }
}

function run(): void {
  t.test('the image imports into containerd, runs trestle version and installs the plugins and conflist', { timeout: 60_000 }, async (t) => {
    const built = await execa('make', ['--no-print-directory', '-C', repoRoot, 'image'], { reject: false, all: true });
    t.equal(built.exitCode, 0, `make image: ${String(built.all).slice(-1500)}`);
    if (built.exitCode !== 0) return;

    const sandbox = await Sandbox.create();
    const containerd = new Containerd(sandbox);
    const cgroups: string[] = [];
    t.teardown(async () => {
      try {
        await containerd.stop();
        for (const cgroup of cgroups) removeCgroup(cgroup);
      } finally {
        await sandbox.destroy();
      }
    });
    // ctr's calls mount these over the machine's paths in their own mount namespace;
    // nothing is installed there for this test.
    for (const dir of ['opt/cni', 'etc/cni/net.d']) mkdirSync(join(containerd.installDir, dir), { recursive: true });
    await containerd.start();

    // The namespace the CRI plugin (the kubelet's) uses, as kind load does.
    const ctr = (args: string[]) => containerd.ctr(['--namespace', 'k8s.io', ...args]);
    const imported = await ctr(['images', 'import', archive]);
    t.equal(imported.exitCode, 0, `ctr images import: ${describe(imported)}`);
    const listed = await ctr(['images', 'ls', '-q']);
    t.match(String(listed.stdout), image, `the image is named ${image}`);
    t.notMatch(String((await containerd.ctr(['images', 'ls', '-q'])).stdout), image, 'in k8s.io, not in the helper\'s own namespace');

    // The node's directories as the DaemonSet's hostPath volumes give them.
    const host = join(sandbox.dir, 'host');
    const binDir = join(host, 'opt/cni/bin');
    const confDir = join(host, 'etc/cni/net.d');
    for (const dir of [binDir, confDir]) mkdirSync(dir, { recursive: true });
    const runInImage = (name: string, mounts: Array<[string, string]>, command: string[]) => {
      const cgroup = `/${containerd.namespace}-${name}`;
      cgroups.push(cgroup);
      const binds = mounts.flatMap(([source, target]) => ['--mount', `type=bind,src=${source},dst=${target},options=rbind:rw`]);
      return ctr(['run', '--rm', '--fifo-dir', containerd.fifoDir, '--cgroup', cgroup, ...binds, image, `${containerd.namespace}-${name}`, ...command]);
    };

    const shown = await runInImage('version', [], ['trestle', 'version']);
    t.equal(shown.exitCode, 0, `trestle version in the image: ${describe(shown)}`);
    t.match(String(shown.stdout), new RegExp(`^trestle ${version.replace(/\./g, '\\.')} \\(CNI .*1\\.1\\.0; Node\\.js v20`), 'the single executable runs on the libraries the layer holds');

    const installed = await runInImage('install', [[binDir, binDir], [confDir, confDir]], ['trestle', 'install-cni', '--cni-bin-dir', binDir, '--cni-conf-dir', confDir, '--pod-cidr', '10.244.1.0/24']);
    t.equal(installed.exitCode, 0, `trestle install-cni in the image: ${describe(installed)}`);
    t.match(String(installed.stdout), /installed Trestle .* for pod CIDR 10\.244\.1\.0\/24 \(7 written, 0 unchanged\)/);
    const client = readFileSync(join(repoRoot, 'dist/client/trestle-client'));
    for (const plugin of plugins) t.ok(readFileSync(join(binDir, plugin)).equals(client), `${plugin} is the native client`);
    t.ok(readFileSync(join(binDir, 'trestle')).equals(readFileSync(join(repoRoot, 'dist/sea/trestle'))), 'trestle is the single executable');
    t.equal(lstatSync(join(binDir, 'trestle')).mode & 0o777, 0o755);
    t.equal(readlinkSync(join(binDir, 'trestle-node')), 'trestle', 'trestle-node links to it');
    t.equal(readFileSync(join(binDir, 'trestle.build'), 'utf8'), readFileSync(join(repoRoot, 'dist/trestle.build'), 'utf8'), 'the build id beside it');
    t.same(JSON.parse(readFileSync(join(confDir, conflistName), 'utf8')), trestleConflist(['10.244.1.0/24']), 'the conflist for the pod CIDR');

    // Again, at the DaemonSet's paths and with its defaults: nothing to do.
    const again = await runInImage('again', [[binDir, defaultCniBinDir], [confDir, defaultCniConfDir]], ['trestle', 'install-cni', '--pod-cidr', '10.244.1.0/24']);
    t.equal(again.exitCode, 0, `a second install-cni: ${describe(again)}`);
    t.match(String(again.stdout), /already installed .*: nothing changed/, 'the second run changes nothing');

    // What the runtime then runs: the client, with no daemon on its socket, falls back to
    // trestle-node, the single executable from the image.
    const answered = await sandbox.exec(sandbox.node, join(binDir, 'trestle-bridge'), [], {
      input: '',
      reject: false,
      env: { CNI_COMMAND: 'VERSION', TRESTLE_SOCKET: join(sandbox.dir, 'no-daemon.sock'), PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    t.equal(answered.exitCode, 0, `the installed trestle-bridge answers VERSION: ${describe(answered)}`);
    t.match(JSON.parse(String(answered.stdout)), { supportedVersions: ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });
}
