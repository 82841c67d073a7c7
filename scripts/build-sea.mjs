// Builds dist/sea/trestle: a Node single executable application holding every Trestle
// program, for nodes without Node.js (kind's node image, most Kubernetes nodes). It is
// this machine's node binary with our bundle and its V8 code cache injected.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { build } from 'esbuild';
import { programBundle } from './bundle-options.mjs';

const dir = 'dist/sea';
// The fuse Node's single-executable support looks for (Node's documented value).
const fuse = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
mkdirSync(dir, { recursive: true });

await build({
  entryPoints: { multicall: 'src/launcher/multicall.ts' },
  outdir: dir,
  ...programBundle,
});

writeFileSync(
  `${dir}/sea-config.json`,
  JSON.stringify({ main: `${dir}/multicall.cjs`, output: `${dir}/trestle.blob`, disableExperimentalSEAWarning: true, useCodeCache: true }),
);
execFileSync(process.execPath, ['--experimental-sea-config', `${dir}/sea-config.json`], { stdio: ['ignore', 'ignore', 'inherit'] });
// Built under another name and renamed into place: a dist/sea/trestle running now (a
// benchmark) keeps its inode, and a failed injection leaves no half-made target.
copyFileSync(process.execPath, `${dir}/trestle.tmp`);
const postject = createRequire(import.meta.url).resolve('postject/dist/cli.js');
execFileSync(process.execPath, [postject, `${dir}/trestle.tmp`, 'NODE_SEA_BLOB', `${dir}/trestle.blob`, '--sentinel-fuse', fuse], { stdio: ['ignore', 'ignore', 'inherit'] });
renameSync(`${dir}/trestle.tmp`, `${dir}/trestle`);
