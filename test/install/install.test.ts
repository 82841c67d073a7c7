// make install in both forms: the native client under each plugin name, the one-shot
// fallback and the CLI beside it, the systemd units; the installed plugins answer with
// no daemon and through a daemon started from the installed `trestle` (also socket-
// activated), a running plugin never makes a reinstall fail, the installed demo passes
// with no reference to the source tree, and make uninstall removes every file.
// The script form is installed into a DESTDIR; the sea form straight into a temp prefix,
// so that its units name executables that exist and `systemd-analyze verify` can check them.
import { lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import t from 'tap';
import { queryDaemon } from '../../src/daemon/query.js';
import { repoRoot, Sandbox } from '../../src/sandbox/sandbox.js';
import { findProgram } from '../helpers/programs.js';

const plugins = ['trestle-bridge', 'trestle-host-local', 'trestle-portmap'];
const supportedVersions = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];
// Installed programs get only this: nothing of the test runner's Node options.
const basePath = process.env['PATH'] ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

// Every entry that is not a directory: files and links (a dangling link included).
function entriesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((entry) => !lstatSync(join(dir, entry)).isDirectory());
}

async function waitFor(what: string, condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

interface Layout {
  form: 'script' | 'sea';
  // Where the files land (DESTDIR included), and the variables make is given.
  root: string;
  variables: string[];
  binDir: string;
  libDir: string;
  userBinDir: string;
  confDir: string;
  systemdDir: string;
  // The path the units name for the installed trestle.
  installedTrestle: string;
}

function layout(form: 'script' | 'sea', root: string): Layout {
  if (form === 'script') {
    return {
      form,
      root,
      variables: [`DESTDIR=${root}`],
      binDir: join(root, 'opt/cni/bin'),
      libDir: join(root, 'opt/cni/lib/trestle'),
      userBinDir: join(root, 'usr/local/bin'),
      confDir: join(root, 'etc/cni/net.d'),
      systemdDir: join(root, 'etc/systemd/system'),
      installedTrestle: '/opt/cni/bin/trestle',
    };
  }
  const dirs = { binDir: join(root, 'cni/bin'), libDir: join(root, 'cni/lib/trestle'), userBinDir: join(root, 'bin'), confDir: join(root, 'net.d'), systemdDir: join(root, 'systemd') };
  return {
    form,
    root,
    variables: [`CNI_BIN_DIR=${dirs.binDir}`, `TRESTLE_LIB_DIR=${dirs.libDir}`, `BIN_DIR=${dirs.userBinDir}`, `CNI_CONF_DIR=${dirs.confDir}`, `SYSTEMD_DIR=${dirs.systemdDir}`],
    ...dirs,
    installedTrestle: join(dirs.binDir, 'trestle'),
  };
}

for (const form of ['script', 'sea'] as const) {
  t.test(`make install INSTALL_FORM=${form}`, async (t) => {
    const root = mkdtempSync(join(tmpdir(), `trestle-install-${form}-`));
    t.teardown(() => rmSync(root, { recursive: true, force: true }));
    const where = layout(form, root);
    const make = (target: string) => execa('make', ['--no-print-directory', '-C', repoRoot, target, `INSTALL_FORM=${form}`, ...where.variables], { reject: false, all: true });
    const sandbox = await Sandbox.create(t);
    const started: ResultPromise[] = [];
    t.teardown(() => {
      for (const child of started) child.kill('SIGKILL');
    });
    // A long-running program in the sandbox's node namespace, ended by PID in teardown.
    const startInNode = (file: string, args: string[], env: Record<string, string>, input?: string) => {
      const child = execa('nsenter', [`--net=${sandbox.nodePath}`, file, ...args], { env: { PATH: basePath, ...env }, extendEnv: false, reject: false, all: true, ...(input === undefined ? { stdin: 'ignore' as const } : { input }) });
      started.push(child);
      return child;
    };
    const callVersion = (plugin: string, socket: string) =>
      execa('nsenter', [`--net=${sandbox.nodePath}`, join(where.binDir, plugin)], {
        env: { PATH: basePath, CNI_COMMAND: 'VERSION', TRESTLE_SOCKET: socket },
        extendEnv: false,
        input: '{"cniVersion":"0.4.0"}',
        reject: false,
      });

    const installed = await make('install');
    t.equal(installed.exitCode, 0, installed.exitCode === 0 ? 'make install succeeds' : `make install fails: ${String(installed.all).slice(-2000)}`);
    t.match(String(installed.all), /systemctl enable --now trestle\.socket/, 'and says how to run the daemon, without running it');

    // The client and the daemon of one install carry one build id.
    const build = readFileSync(join(repoRoot, 'dist/trestle.build'), 'utf8').trim();
    const buildFile = join(form === 'sea' ? where.binDir : where.libDir, 'trestle.build');
    t.equal(readFileSync(buildFile, 'utf8').trim(), build, `trestle.build ${form === 'sea' ? 'beside the single executable' : 'in the library directory'}`);
    const client = readFileSync(join(repoRoot, 'dist/client/trestle-client'));
    for (const plugin of plugins) {
      t.ok(readFileSync(join(where.binDir, plugin)).equals(client), `${plugin} is the native client`);
    }
    t.ok(client.includes(build), 'built with that id');
    t.same(readdirSync(where.binDir).sort(), ['trestle', ...plugins, 'trestle-node', ...(form === 'sea' ? ['trestle.build', 'koffi.node'] : [])].sort(), 'CNI_BIN_DIR holds the plugins, trestle-node and trestle (and, for the single executable, its native module)');
    if (form === 'script') {
      t.same(readdirSync(where.libDir).sort(), ['koffi.node', 'launch.cjs', 'trestle-bridge.cjs', 'trestle-host-local.cjs', 'trestle-portmap.cjs', 'trestle.build', 'trestle.cjs'], 'the library directory holds the bundles and the native module');
    } else {
      t.equal(readlinkSync(join(where.binDir, 'trestle-node')), 'trestle', 'trestle-node is a link to the single executable');
    }
    t.ok(lstatSync(join(where.confDir, '10-trestle.conflist')).isFile(), 'the conflist in CNI_CONF_DIR');

    const service = readFileSync(join(where.systemdDir, 'trestle.service'), 'utf8');
    const socketUnit = readFileSync(join(where.systemdDir, 'trestle.socket'), 'utf8');
    t.match(service, new RegExp(`^ExecStart="${where.installedTrestle}" daemon$`, 'm'), 'the service runs the installed trestle');
    t.match(service, /^RestartForceExitStatus=75$/m, 'and restarts it onto a new build');
    t.match(socketUnit, /^ListenStream=\/run\/trestle\/trestled\.sock$/m, 'the socket unit listens where the client calls');
    const analyze = findProgram('systemd-analyze');
    if (form === 'sea' && analyze) {
      const verify = await execa(analyze, ['verify', join(where.systemdDir, 'trestle.socket'), join(where.systemdDir, 'trestle.service')], { reject: false, all: true });
      t.equal(verify.exitCode, 0, `systemd-analyze verify accepts the units: ${String(verify.all)}`);
    }

    // No daemon: the client runs each call one-shot through trestle-node.
    for (const plugin of plugins) {
      const answer = await callVersion(plugin, join(root, 'none.sock'));
      t.same(JSON.parse(String(answer.stdout)), { cniVersion: '0.4.0', supportedVersions }, `${plugin} answers VERSION with no daemon`);
    }

    // A daemon from the installed trestle, in the node namespace: the same build, so it
    // serves the calls itself (a mismatch would run them one-shot and serve nothing).
    const socket = join(root, 'run/trestled.sock');
    startInNode(join(where.binDir, 'trestle'), ['daemon'], { TRESTLE_SOCKET: socket });
    await waitFor('the installed daemon answers', async () => (await queryDaemon(socket, 1_000)).running);
    for (const plugin of plugins) {
      const answer = await callVersion(plugin, socket);
      t.same(JSON.parse(String(answer.stdout)), { cniVersion: '0.4.0', supportedVersions }, `${plugin} answers VERSION through the daemon`);
    }
    t.match(await queryDaemon(socket), { running: true, build, served: plugins.length }, 'the daemon runs the installed build and served every call');

    // Socket activation as systemd does it: the daemon starts on the first call.
    const activate = findProgram('systemd-socket-activate');
    if (activate) {
      const activated = join(root, 'run/activated.sock');
      const listener = startInNode(activate, ['-l', activated, join(where.binDir, 'trestle'), 'daemon'], {});
      await waitFor('systemd-socket-activate listens', async () => lstatSync(activated, { throwIfNoEntry: false })?.isSocket() ?? false);
      const answer = await callVersion('trestle-bridge', activated);
      t.same(JSON.parse(String(answer.stdout)), { cniVersion: '0.4.0', supportedVersions }, 'a socket-activated daemon answers the first call');
      t.match(await queryDaemon(activated), { running: true, pid: listener.pid, build, served: 1 }, 'the daemon took over the activation socket and served it');
    }

    // A plugin that runs while make install replaces it (a daemon that never answers keeps
    // it waiting), and the running daemon's own executable: neither makes it fail.
    const held: Socket[] = [];
    const silentPath = join(root, 'silent.sock');
    const silent = createServer((connection) => held.push(connection));
    await new Promise<void>((resolve) => silent.listen(silentPath, resolve));
    t.teardown(() => {
      for (const connection of held) connection.destroy();
      silent.close();
    });
    const waiting = startInNode(join(where.binDir, 'trestle-bridge'), [], { CNI_COMMAND: 'VERSION', TRESTLE_SOCKET: silentPath, TRESTLE_CLIENT_TIMEOUT_MS: '600000' }, '{"cniVersion":"1.0.0"}');
    await waitFor('the plugin waits on the silent daemon', async () => held.length > 0);
    const again = await make('install');
    t.equal(again.exitCode, 0, again.exitCode === 0 ? 'make install again succeeds while a plugin runs' : `make install again fails: ${String(again.all).slice(-2000)}`);
    t.equal(waiting.exitCode, null, 'the plugin is still running');
    t.match(await queryDaemon(socket), { running: true, build }, 'and the daemon still answers');
    waiting.kill('SIGKILL');

    const files = entriesUnder(root).filter((entry) => !entry.startsWith('run/') && entry !== 'silent.sock');
    for (const file of files) {
      const path = join(root, file);
      const content = lstatSync(path).isSymbolicLink() ? readlinkSync(path) : readFileSync(path);
      t.notOk(content.includes(repoRoot), `${file} does not refer to the source tree`);
    }

    // The installed CLI finds the plugins beside itself; TRESTLE_BIN_DIR (the test
    // runner's way to point the sandbox elsewhere) must not be set.
    const demo = await execa(join(where.binDir, 'trestle'), ['demo'], { cwd: root, env: { PATH: basePath }, extendEnv: false, reject: false, all: true });
    t.equal(demo.exitCode, 0, demo.exitCode === 0 ? 'the installed demo passes' : `the installed demo fails: ${String(demo.all).slice(-3000)}`);
    t.match(String(demo.all), `plugins from ${where.binDir}`, 'with the installed plugins');

    const removed = await make('uninstall');
    t.equal(removed.exitCode, 0, 'make uninstall succeeds');
    t.same(
      entriesUnder(root).filter((entry) => !entry.startsWith('run/') && entry !== 'silent.sock'),
      [],
      'and leaves nothing behind',
    );
  });
}
