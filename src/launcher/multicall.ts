// The single-executable form: one binary for every Trestle program, installed under
// several names, each chosen by the name it is invoked under (as busybox does).
// argv0 is used, not execPath: the kernel resolves execPath through symlinks.
import { basename } from 'node:path';

const programs: Record<string, () => Promise<unknown>> = {
  'trestle-bridge': () => import('../plugins/bridge/main.js'),
  'trestle-host-local': () => import('../plugins/host-local/main.js'),
  'trestle-portmap': () => import('../plugins/portmap/main.js'),
  trestle: () => import('../cli/main.js'),
};

const name = basename(process.argv0);
const program = programs[name];
if (program === undefined) {
  process.stderr.write(`trestle: invoked as "${name}"; install this binary as one of ${Object.keys(programs).join(', ')}\n`);
  process.exitCode = 2;
} else {
  void program();
}
