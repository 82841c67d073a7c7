// Loads a bundled executable with a V8 code cache beside it. Every CNI call is a new
// process, and compiling our bundle again each time cost ~3.5 ms of the ~8.5 ms a
// bridge ADD spends loading code (measured here); Node 20 has no built-in compile
// cache. One cache per CNI command, written after that command's first run, so it
// holds exactly the functions that command compiles.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Script } from 'node:vm';

const commands = new Set(['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC']);

function readCache(file: string): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch {
    return undefined;
  }
}

// Best effort: a read-only install directory just means no cache.
function writeCache(file: string, data: Buffer): void {
  const temporary = `${file}.${process.pid}`;
  try {
    writeFileSync(temporary, data);
    renameSync(temporary, file);
  } catch {
    // Nothing to undo beyond a temporary file that may not exist.
  }
}

export function launch(bundle: string): void {
  const source = readFileSync(bundle, 'utf8');
  const command = process.env['CNI_COMMAND'] ?? '';
  const cacheFile = `${bundle}.${commands.has(command) ? command : 'CLI'}.cache`;
  const cachedData = readCache(cacheFile);
  const wrapped = `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
  const script = new Script(wrapped, cachedData ? { filename: bundle, cachedData } : { filename: bundle });
  if (!cachedData || script.cachedDataRejected === true) {
    process.once('exit', () => writeCache(cacheFile, script.createCachedData()));
  }
  const body = script.runInThisContext() as (exports: object, require: NodeJS.Require, module: object, filename: string, dirname: string) => void;
  const module = { exports: {} };
  body(module.exports, require, module, bundle, dirname(bundle));
}
