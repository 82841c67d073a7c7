// Bundles each executable into one ESM file under dist/: a CNI plugin is a new
// process per call, and resolving node_modules at start-up costs more than the work.
import { build } from 'esbuild';

const entries = {
  'trestle-bridge': 'src/plugins/bridge/main.ts',
  'trestle-host-local': 'src/plugins/host-local/main.ts',
  'trestle-portmap': 'src/plugins/portmap/main.ts',
  trestle: 'src/cli/main.ts',
};

const selected = process.argv.slice(2);
const names = selected.length > 0 ? selected : Object.keys(entries);

await build({
  entryPoints: Object.fromEntries(names.map((name) => [name, entries[name]])),
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  minifySyntax: true,
  legalComments: 'none',
  // CommonJS dependencies (proper-lockfile) call require() for node built-ins.
  banner: { js: "import { createRequire as __trestleRequire } from 'node:module'; const require = __trestleRequire(import.meta.url);" },
  logLevel: 'warning',
});
