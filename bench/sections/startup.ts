import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../src/sandbox/sandbox.js';
import { cniVersion, roles, type Implementation, type Role } from '../impls.js';
import { log } from '../log.js';
import { Runtime } from '../runtime.js';
import { inTurn } from '../workload.js';

// The start-up floor: VERSION does no work beyond answering, so its latency is what
// every call pays before doing anything. Runs interleave all executables.
export interface StartupResult {
  implementation: Implementation;
  role: Role;
  type: string;
  ms: number[];
  failures: number;
}

// The single-executable form (make sea), linked under the plugin names as make
// install links it, when it has been built: it is timed beside the script form.
export function singleExecutable(trestle: Implementation): { implementation: Implementation; cleanup(): void } | undefined {
  const binary = join(repoRoot, 'dist', 'sea', 'trestle');
  if (!existsSync(binary)) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'trestle-bench-sea-'));
  for (const type of Object.values(trestle.types)) symlinkSync(binary, join(dir, type));
  return {
    implementation: { ...trestle, label: 'trestle (single executable)', pluginDirs: [dir] },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export async function runStartup(implementations: readonly Implementation[], runs: number): Promise<StartupResult[]> {
  log(`start-up: ${runs} VERSION calls per executable`);
  const entries = implementations.flatMap((implementation) => {
    // No namespace: VERSION touches no network.
    const runtime = new Runtime(implementation.pluginDirs);
    return roles.map((role) => ({ runtime, result: { implementation, role, type: implementation.types[role], ms: [] as number[], failures: 0 } }));
  });
  for (let run = 0; run < runs; run += 1) {
    for (const { runtime, result } of inTurn(entries, run)) {
      const outcome = await runtime.invoke(result.type, 'VERSION', { cniVersion });
      if (outcome.status === 0) result.ms.push(outcome.ms);
      else result.failures += 1;
    }
  }
  return entries.map((entry) => entry.result);
}
