import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isSea } from 'node:sea';

// The build a daemon runs, and the one now installed beside it: `make build` writes
// trestle.build (the digest the client is compiled with) next to the bundles. A client of
// another build is told so and runs its call one-shot; when the installed build is
// no longer the running one, the daemon restarts onto it once idle.
export function installedBuild(bundleDir: string): string | undefined {
  try {
    const text = readFileSync(join(bundleDir, 'trestle.build'), 'utf8').trim();
    return /^[0-9a-f]{16}$/.test(text) ? text : undefined;
  } catch {
    return undefined;
  }
}

// The directory of the running bundle (dist/, or the installed library directory); a
// single executable carries its bundle inside, and its build file sits beside it.
export function runningBundleDirectory(): string {
  return isSea() || typeof __dirname !== 'string' ? dirname(process.execPath) : __dirname;
}
