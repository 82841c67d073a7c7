// Bundles each executable into one CommonJS file under dist/. A CNI plugin is a new
// process per call: resolving node_modules would cost more than the work, and a
// CommonJS entry starts ~3.5 ms sooner than an ES module (measured here: Node's ESM
// loader pulls in fs/promises and streams before running a line of ours).
import { copyFileSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { build } from 'esbuild';
import { programBundle } from './bundle-options.mjs';

const entries = {
  launch: 'src/launcher/launch.ts',
  'trestle-bridge': 'src/plugins/bridge/main.ts',
  'trestle-host-local': 'src/plugins/host-local/main.ts',
  'trestle-portmap': 'src/plugins/portmap/main.ts',
  trestle: 'src/cli/main.ts',
};

// Code caches belong to the bundles they were made from; the launcher names them after
// the bundle file, so old ones would only pile up.
mkdirSync('dist', { recursive: true });
for (const name of readdirSync('dist', { withFileTypes: true })) {
  if (name.isFile() && name.name.endsWith('.cache')) rmSync(`dist/${name.name}`);
}

const selected = process.argv.slice(2);
const names = selected.length > 0 ? selected : Object.keys(entries);

const output = await build({
  // Written below, each file replaced by a rename: a plugin started while we build
  // reads either the old bundle or the new one, never half of one.
  write: false,
  entryPoints: Object.fromEntries(names.map((name) => [name, entries[name]])),
  outdir: 'dist',
  ...programBundle,
});
for (const file of output.outputFiles) {
  const temporary = `${file.path}.${process.pid}.tmp`;
  writeFileSync(temporary, file.contents);
  renameSync(temporary, file.path);
}

// koffi's native module (the FFI behind netlink and libnftables), beside the bundles
// that load it: they never resolve node_modules at run time.
const native = `node_modules/@koromix/koffi-${process.platform}-${process.arch}/${process.platform}_${process.arch}/koffi.node`;
const nativeTemporary = `dist/koffi.node.${process.pid}.tmp`;
copyFileSync(native, nativeTemporary);
renameSync(nativeTemporary, 'dist/koffi.node');
