import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HostError } from '../errors.js';

// The few parts of koffi's API that Trestle uses.
export interface Koffi {
  version: string;
  load(path: string): KoffiLibrary;
  errno(): number;
}

export interface KoffiLibrary {
  func(prototype: string): (...args: unknown[]) => unknown;
}

// The version whose native module the build copies beside the bundles; package.json
// pins the same one.
const expectedVersion = '3.3.4';

// Where this code runs from: dist/ (or the installed library directory) for a bundle,
// src/host/native for the tests, which import the sources.
function ownDirectory(): string {
  return typeof __dirname === 'string' ? __dirname : dirname(fileURLToPath(import.meta.url));
}

// The native module itself, loaded with process.dlopen rather than through koffi's
// JavaScript entry: that entry searches several directories and costs ~4 ms of every
// one-shot call (the module alone, ~1 ms), and a single executable cannot require()
// a file at all. `make build` copies the module beside the bundles (found at the first
// look); from the sources it is in node_modules, searched only then.
function* candidates(): Generator<string> {
  const here = ownDirectory();
  yield join(here, 'koffi.node');
  yield join(dirname(process.execPath), 'koffi.node');
  try {
    const packageJson = createRequire(join(here, 'index.js')).resolve(`@koromix/koffi-${process.platform}-${process.arch}/package.json`);
    yield join(dirname(packageJson), `${process.platform}_${process.arch}`, 'koffi.node');
  } catch {
    // Not run from the sources: the copies above are the only places.
  }
}

let loaded: Koffi | undefined;

// The one place where a node without the FFI shows: every netlink and nftables call
// fails with this error (code 103 through the plugins' host-failure mapping) instead
// of falling back to another path that no test would cover.
export function koffi(): Koffi {
  if (loaded) return loaded;
  const tried: string[] = [];
  let path: string | undefined;
  for (const file of candidates()) {
    tried.push(file);
    if (existsSync(file)) {
      path = file;
      break;
    }
  }
  if (path === undefined) throw new HostError(`Trestle's native module koffi.node is missing (looked in ${tried.join(', ')}): reinstall Trestle`, 'native module missing');
  const module = { exports: {} as Koffi };
  try {
    process.dlopen(module, path);
  } catch (error) {
    throw new HostError(`cannot load Trestle's native module ${path}: ${(error as Error).message}`, (error as Error).message);
  }
  if (module.exports.version !== expectedVersion) {
    throw new HostError(`Trestle's native module ${path} is koffi ${module.exports.version}, expected ${expectedVersion}: reinstall Trestle`, 'native module version mismatch');
  }
  loaded = module.exports;
  return loaded;
}
