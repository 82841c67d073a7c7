// make install / make uninstall. Two forms of the same programs:
//   script (default): small launchers in CNI_BIN_DIR that run the bundles kept in
//     TRESTLE_LIB_DIR with Node (per-command V8 code caches written beside them);
//   sea: one Node single executable (dist/sea/trestle, no Node.js needed on the node),
//     installed as trestle and linked as each plugin name.
// Either way nothing refers to the source tree or node_modules. DESTDIR is honoured:
// launchers find their bundles by a path relative to themselves.
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const [action = 'install'] = process.argv.slice(2);
const env = process.env;
const destdir = env.DESTDIR ?? '';
const binDir = env.CNI_BIN_DIR ?? '/opt/cni/bin';
const confDir = env.CNI_CONF_DIR ?? '/etc/cni/net.d';
const libDir = env.TRESTLE_LIB_DIR ?? join(binDir, '../lib/trestle');
const userBinDir = env.BIN_DIR ?? '/usr/local/bin';
const form = env.INSTALL_FORM ?? 'script';
const programs = ['trestle-bridge', 'trestle-host-local', 'trestle-portmap', 'trestle'];
const conflist = '10-trestle.conflist';

const under = (path) => join(destdir, path);

// The repository's own launcher, pointed at the library directory instead of ../dist
// (relative, so that a DESTDIR tree runs where it is).
function launcher(program) {
  const relativeLib = relative(binDir, libDir);
  const toLib = relativeLib.startsWith('.') ? relativeLib : `./${relativeLib}`;
  return readFileSync(join('bin', program), 'utf8').replaceAll('"../dist/', `"${toLib}/`);
}

function replaceWithLink(target, path) {
  rmSync(path, { force: true });
  symlinkSync(target, path);
}

function install() {
  for (const dir of [binDir, confDir, userBinDir]) mkdirSync(under(dir), { recursive: true });
  if (form === 'script') {
    mkdirSync(under(libDir), { recursive: true });
    for (const name of readdirSync(under(libDir))) if (name.endsWith('.cache')) rmSync(join(under(libDir), name));
    for (const file of ['launch.cjs', ...programs.map((program) => `${program}.cjs`)]) copyFileSync(join('dist', file), join(under(libDir), file));
    for (const program of programs) {
      rmSync(under(join(binDir, program)), { force: true });
      writeFileSync(under(join(binDir, program)), launcher(program), { mode: 0o755 });
    }
  } else if (form === 'sea') {
    if (!existsSync('dist/sea/trestle')) throw new Error('dist/sea/trestle is missing: run make sea');
    rmSync(under(join(binDir, 'trestle')), { force: true });
    copyFileSync('dist/sea/trestle', under(join(binDir, 'trestle')));
    chmodSync(under(join(binDir, 'trestle')), 0o755);
    for (const program of programs.filter((name) => name !== 'trestle')) replaceWithLink('trestle', under(join(binDir, program)));
  } else {
    throw new Error(`INSTALL_FORM must be script or sea, not "${form}"`);
  }
  replaceWithLink(join(binDir, 'trestle'), under(join(userBinDir, 'trestle')));
  copyFileSync(join('conf', conflist), under(join(confDir, conflist)));
  process.stdout.write(`installed Trestle (${form} form) in ${under(binDir)}; ${conflist} in ${under(confDir)}\n`);
}

function uninstall() {
  for (const program of programs) rmSync(under(join(binDir, program)), { force: true });
  rmSync(under(join(userBinDir, 'trestle')), { force: true });
  rmSync(under(libDir), { recursive: true, force: true });
  rmSync(under(join(confDir, conflist)), { force: true });
  process.stdout.write(`removed Trestle from ${under(binDir)}, ${under(libDir)} and ${under(join(confDir, conflist))}\n`);
}

if (action === 'install') install();
else if (action === 'uninstall') uninstall();
else throw new Error(`unknown action "${action}"`);
