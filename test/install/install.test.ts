// make install in both forms, into a DESTDIR: the installed programs run the demo (a
// full ADD/traffic/DEL cycle in a sandbox) with no reference to the source tree, and
// make uninstall removes every file it installed.
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { repoRoot } from '../../src/sandbox/sandbox.js';

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((entry) => statSync(join(dir, entry), { throwIfNoEntry: false })?.isFile() ?? false);
}

for (const form of ['script', 'sea'] as const) {
  t.test(`make install INSTALL_FORM=${form}`, async (t) => {
    const destdir = mkdtempSync(join(tmpdir(), `trestle-install-${form}-`));
    t.teardown(() => rmSync(destdir, { recursive: true, force: true }));
    const make = (target: string) => execa('make', ['--no-print-directory', '-C', repoRoot, target, `DESTDIR=${destdir}`, `INSTALL_FORM=${form}`], { reject: false, all: true });

    const installed = await make('install');
    t.equal(installed.exitCode, 0, installed.exitCode === 0 ? 'make install succeeds' : `make install fails: ${String(installed.all).slice(-2000)}`);
    const binDir = join(destdir, 'opt/cni/bin');
    t.same(readdirSync(binDir).sort(), ['trestle', 'trestle-bridge', 'trestle-host-local', 'trestle-portmap'], 'the four programs in CNI_BIN_DIR');
    t.ok(statSync(join(destdir, 'etc/cni/net.d/10-trestle.conflist')).isFile(), 'the conflist in CNI_CONF_DIR');
    if (form === 'script') {
      for (const file of filesUnder(destdir).filter((entry) => !entry.endsWith('.conflist'))) {
        t.notMatch(readFileSync(join(destdir, file), 'utf8'), repoRoot, `${file} does not refer to the source tree`);
      }
    }

    for (const program of ['trestle-bridge', 'trestle-host-local', 'trestle-portmap']) {
      const answer = await execa(join(binDir, program), [], { env: { CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"0.4.0"}', reject: false });
      t.match(JSON.parse(String(answer.stdout)), { cniVersion: '0.4.0', supportedVersions: ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] }, `${program} answers VERSION`);
    }

    // TRESTLE_BIN_DIR is the test runner's way to point the sandbox elsewhere: unset,
    // the installed CLI finds the plugins beside itself.
    const env = { ...process.env };
    delete env['TRESTLE_BIN_DIR'];
    const demo = await execa(join(binDir, 'trestle'), ['demo'], { cwd: destdir, env, extendEnv: false, reject: false, all: true });
    t.equal(demo.exitCode, 0, demo.exitCode === 0 ? 'the installed demo passes' : `the installed demo fails: ${String(demo.all).slice(-3000)}`);
    t.match(String(demo.all), `plugins from ${binDir}`, 'with the installed plugins');

    const removed = await make('uninstall');
    t.equal(removed.exitCode, 0, 'make uninstall succeeds');
    t.same(filesUnder(destdir), [], 'and leaves no file behind');
  });
}
