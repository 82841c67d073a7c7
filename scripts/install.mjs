// make install / make uninstall. In CNI_BIN_DIR, either way:
//   trestle-bridge, trestle-host-local, trestle-portmap: copies of the native client
//     (dist/client/trestle-client), which forwards each call to the daemon, or runs
//   trestle-node: the one-shot plugin, when no daemon answers;
//   trestle: the CLI (and `trestle daemon`), linked from BIN_DIR.
// Two forms of the Node programs:
//   script (default): launchers run by the node's Node.js, with the bundles and the
//     build id (trestle.build) in TRESTLE_LIB_DIR (per-command V8 code caches beside them);
//   sea: one Node single executable (dist/sea/trestle, no Node.js needed on the node) as
//     trestle, linked as trestle-node, with trestle.build beside it.
// The daemon's units go to SYSTEMD_DIR (neither enabled nor started). Nothing refers to
// the source tree or node_modules. DESTDIR is honoured: launchers find their bundles by
// a path relative to themselves; the units name the final paths.
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';

const [action = 'install'] = process.argv.slice(2);
const env = process.env;
const destdir = env.DESTDIR ?? '';
const binDir = env.CNI_BIN_DIR ?? '/opt/cni/bin';
const confDir = env.CNI_CONF_DIR ?? '/etc/cni/net.d';
const libDir = env.TRESTLE_LIB_DIR ?? join(binDir, '../lib/trestle');
const userBinDir = env.BIN_DIR ?? '/usr/local/bin';
const systemdDir = env.SYSTEMD_DIR ?? '/etc/systemd/system';
const form = env.INSTALL_FORM ?? 'script';
const plugins = ['trestle-bridge', 'trestle-host-local', 'trestle-portmap'];
const bundles = ['launch.cjs', 'trestle.cjs', ...plugins.map((plugin) => `${plugin}.cjs`)];
// koffi's native module, which the programs load from beside themselves (netlink, nftables).
const nativeModule = 'koffi.node';
const units = ['trestle.socket', 'trestle.service'];
const conflist = '10-trestle.conflist';
const buildFile = 'trestle.build';

const under = (path) => join(destdir, path);

// Every file is written under a temporary name beside its place and renamed over it:
// a program running now keeps its old inode, so a plugin call in progress never makes
// the install fail ("Text file busy"), and no caller ever finds half a file.
function place(path, write) {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  rmSync(temporary, { force: true });
  write(temporary);
  renameSync(temporary, path);
}

function copy(from, to, mode = 0o644) {
  place(to, (temporary) => {
    copyFileSync(from, temporary);
    chmodSync(temporary, mode);
  });
}

const write = (to, text, mode = 0o644) => place(to, (temporary) => writeFileSync(temporary, text, { mode }));
const link = (target, to) => place(to, (temporary) => symlinkSync(target, temporary));

function needed(file, make) {
  if (!existsSync(file)) throw new Error(`${file} is missing: run ${make}`);
  return file;
}

// The repository's own launcher, pointed at the library directory instead of ../dist
// (relative, so that a DESTDIR tree runs where it is).
function launcher(program) {
  const relativeLib = relative(binDir, libDir);
  const toLib = relativeLib.startsWith('.') ? relativeLib : `./${relativeLib}`;
  return readFileSync(join('bin', program), 'utf8').replaceAll(/(["'`])\.\.\/dist\//g, `$1${toLib}/`);
}

// ExecStart's executable, quoted for systemd: specifiers (%) and variables ($) doubled.
function systemdPath(path) {
  return `"${path.replaceAll(/[\\"]/g, '\\$&').replaceAll('%', '%%').replaceAll('$', '$$$$')}"`;
}

function installUnits() {
  mkdirSync(under(systemdDir), { recursive: true });
  for (const unit of units) {
    const text = readFileSync(join('conf/systemd', unit), 'utf8').replace(/^ExecStart=\S+/m, `ExecStart=${systemdPath(join(binDir, 'trestle'))}`);
    write(under(join(systemdDir, unit)), text);
  }
}

function install() {
  const build = needed(join('dist', buildFile), 'make build');
  const client = needed('dist/client/trestle-client', 'make build');
  for (const dir of [binDir, confDir, userBinDir]) mkdirSync(under(dir), { recursive: true });
  for (const plugin of plugins) copy(client, under(join(binDir, plugin)), 0o755);
  if (form === 'script') {
    mkdirSync(under(libDir), { recursive: true });
    for (const name of readdirSync(under(libDir))) if (name.endsWith('.cache')) rmSync(join(under(libDir), name));
    for (const file of [...bundles, nativeModule, buildFile]) copy(join('dist', file), join(under(libDir), file));
    for (const program of ['trestle', 'trestle-node']) write(under(join(binDir, program)), launcher(program), 0o755);
    // What a sea install left.
    rmSync(under(join(binDir, buildFile)), { force: true });
    rmSync(under(join(binDir, nativeModule)), { force: true });
  } else if (form === 'sea') {
    copy(needed('dist/sea/trestle', 'make sea'), under(join(binDir, 'trestle')), 0o755);
    // The daemon reads its build id beside the executable; the same file the client
    // was compiled with, so that the two installed together agree.
    copy(build, under(join(binDir, buildFile)));
    copy(join('dist', nativeModule), under(join(binDir, nativeModule)));
    link('trestle', under(join(binDir, 'trestle-node')));
    // What a script install left.
    rmSync(under(libDir), { recursive: true, force: true });
  } else {
    throw new Error(`INSTALL_FORM must be script or sea, not "${form}"`);
  }
  link(join(binDir, 'trestle'), under(join(userBinDir, 'trestle')));
  copy(join('conf', conflist), under(join(confDir, conflist)));
  installUnits();
  const buildId = readFileSync(build, 'utf8').trim();
  process.stdout.write(
    `installed Trestle (${form} form, build ${buildId}) in ${under(binDir)}; ${conflist} in ${under(confDir)}; systemd units in ${under(systemdDir)}\n` +
      'the daemon is optional (without it every call runs one-shot); to run it: systemctl daemon-reload && systemctl enable --now trestle.socket\n',
  );
}

function uninstall() {
  for (const program of [...plugins, 'trestle', 'trestle-node', buildFile, nativeModule]) rmSync(under(join(binDir, program)), { force: true });
  rmSync(under(join(userBinDir, 'trestle')), { force: true });
  rmSync(under(libDir), { recursive: true, force: true });
  rmSync(under(join(confDir, conflist)), { force: true });
  for (const unit of units) rmSync(under(join(systemdDir, unit)), { force: true });
  process.stdout.write(
    `removed Trestle from ${under(binDir)}, ${under(libDir)}, ${under(join(confDir, conflist))} and ${under(systemdDir)}\n` +
      'if the daemon was enabled: systemctl disable --now trestle.socket trestle.service && systemctl daemon-reload\n',
  );
}

if (action === 'install') install();
else if (action === 'uninstall') uninstall();
else throw new Error(`unknown action "${action}"`);
