// Bundles the benchmark into dist/bench.mjs. Dependencies stay in node_modules: the
// benchmark starts once, so their load time does not matter (unlike a plugin's). Builds
// bench/exec-timer.c too, static with musl like the client it times.
import { execFileSync } from 'node:child_process';
import { build } from 'esbuild';
import { toolBundle } from '../scripts/bundle-options.mjs';

await build({
  entryPoints: ['bench/main.ts'],
  outfile: 'dist/bench.mjs',
  ...toolBundle,
});
execFileSync('musl-gcc', ['-static', '-O2', '-Wall', '-Wextra', '-o', 'dist/bench-exec-timer', 'bench/exec-timer.c'], { stdio: 'inherit' });
