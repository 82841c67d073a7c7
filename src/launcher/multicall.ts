// The single-executable form: one binary for every Trestle program, chosen by the name
// it is invoked under (as busybox does). argv0 is used, not execPath: the kernel
// resolves execPath through symlinks. make install puts it in as `trestle` and links
// `trestle-node` to it: the one-shot fallback the native client executes with the
// plugin's name as first argument. Inside a Node 20 single executable process.argv is
// [execPath, argv0, ...arguments] (measured), so that name is argv[2]. Linked under a
// plugin's own name it runs that plugin directly (the benchmark times it so).
import { basename } from 'node:path';

// Maps, not object literals: a name like "constructor" must not find a program.
const plugins = new Map<string, () => Promise<unknown>>([
  ['trestle-bridge', () => import('../plugins/bridge/main.js')],
  ['trestle-host-local', () => import('../plugins/host-local/main.js')],
  ['trestle-portmap', () => import('../plugins/portmap/main.js')],
]);
const programs = new Map<string, () => Promise<unknown>>([...plugins, ['trestle', () => import('../cli/main.js')]]);

function fail(message: string): void {
  process.stderr.write(`${message}\n`);
  process.exitCode = 2;
}

const name = basename(process.argv0);
if (name === 'trestle-node') {
  const plugin = plugins.get(process.argv[2] ?? '');
  if (plugin === undefined) fail(`trestle-node: expected a plugin name (${[...plugins.keys()].join(', ')}), got ${JSON.stringify(process.argv[2] ?? null)}`);
  else void plugin();
} else {
  const program = programs.get(name);
  if (program === undefined) fail(`trestle: invoked as "${name}"; install this binary as trestle (or one of ${[...plugins.keys()].join(', ')}) and link trestle-node to it`);
  else void program();
}
