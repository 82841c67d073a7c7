// Bundles the benchmark into dist/bench.mjs. Dependencies stay in node_modules: the
// benchmark starts once, so their load time does not matter (unlike a plugin's).
import { build } from 'esbuild';

await build({
  entryPoints: ['bench/main.ts'],
  outfile: 'dist/bench.mjs',
  bundle: true,
  packages: 'external',
  platform: 'node',
  target: 'node20',
  format: 'esm',
  logLevel: 'warning',
});
