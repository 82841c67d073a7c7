// Loads a bundled executable with a V8 code cache beside it. Every CNI call is a new
// process, and compiling our bundle again each time cost ~3.5 ms of the ~8.5 ms a
// bridge ADD spends loading code (measured here); Node 20 has no built-in compile
// cache. One cache per CNI command, written after that command's first run, so it
// holds exactly the functions that command compiles. `trestle daemon` has one of its
// own (see daemonRole).
import { closeSync, fstatSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
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

// V8 accepts a code cache for any source of the same length, and a rebuilt bundle
// often has exactly the old length (the minifier only renamed identifiers): the stale
// cache then runs the old bytecode against the new source (seen here as a stack
// overflow). So the cache is named after this very file: its inode and mtime change
// whenever the bundle is rebuilt or reinstalled.
function cacheName(bundle: string, fd: number, role: string): string {
  const { ino, mtimeMs } = fstatSync(fd);
  return `${bundle}.${role}.${ino.toString(36)}-${Math.trunc(mtimeMs).toString(36)}.cache`;
}

// A resident daemon compiles the plugins' code on the calls it serves, and a fresh one
// met by a burst of ADDs spent ~8% more CPU on it when its cache held only start-up
// and VERSION (measured here, 50 ADDs of bridge + portmap): what the first daemon to
// exit happened to have run. So a daemon writes its cache at exit whenever it holds
// more than the one it loaded, and shares none with the short CLI commands.
const daemonRole = 'DAEMON';

function cacheRole(): string {
  const command = process.env['CNI_COMMAND'];
  if (command !== undefined) return commands.has(command) ? command : 'CLI';
  return process.argv[2] === 'daemon' ? daemonRole : 'CLI';
}

export function launch(bundle: string): void {
  const fd = openSync(bundle, 'r');
  const role = cacheRole();
  const cacheFile = cacheName(bundle, fd, role);
  const source = readFileSync(fd, 'utf8');
  closeSync(fd);
  const cachedData = readCache(cacheFile);
  const wrapped = `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
  const script = new Script(wrapped, cachedData ? { filename: bundle, cachedData } : { filename: bundle });
  const unusable = !cachedData || script.cachedDataRejected === true;
  if (unusable || role === daemonRole) {
    process.once('exit', () => {
      const data = script.createCachedData();
      if (unusable || data.length > (cachedData?.length ?? 0)) writeCache(cacheFile, data);
    });
  }
  const body = script.runInThisContext() as (exports: object, require: NodeJS.Require, module: object, filename: string, dirname: string) => void;
  const module = { exports: {} };
  body(module.exports, require, module, bundle, dirname(bundle));
}
