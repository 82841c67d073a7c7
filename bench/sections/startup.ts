import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../../src/sandbox/sandbox.js';
import { cniVersion, roles, type Implementation, type Role } from '../impls.js';
import { log } from '../log.js';
import { BenchNode } from '../node.js';
import { execTimer, Runtime } from '../runtime.js';
import { inTurn } from '../workload.js';

// The start-up floor: VERSION does no work beyond answering, so its latency is what
// every call pays before doing anything. Runs interleave all executables. Two clocks:
// the runtime's (Node's spawn, as every other section times a call, and as the earlier
// results were taken), and exec-timer (bench/exec-timer.c), which adds microseconds
// where Node's spawn adds about a millisecond: with the daemon, the client's start-up
// plus a round trip is itself about that much.
export interface StartupResult {
  implementation: Implementation;
  role: Role;
  type: string;
  ms: number[];
  // The same calls timed by exec-timer.
  execMs: number[];
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

const batch = 10;

async function execTimed(runtime: Runtime, type: string, input: string, runs: number): Promise<{ ms: number[]; failures: number }> {
  const { stdout } = await promisify(execFile)(execTimer, [String(runs), input, runtime.executable(type)], { env: runtime.environment('VERSION') });
  const lines = stdout.trim().split('\n');
  const ms = lines.filter((line) => !line.startsWith('fail')).map(Number);
  return { ms, failures: lines.length - ms.length };
}

export async function runStartup(implementations: readonly Implementation[], runs: number): Promise<StartupResult[]> {
  log(`start-up: ${runs} VERSION calls per executable, twice (runtime's clock, exec-timer)`);
  // Each implementation's socket is a node's own (with its daemon when resident); the
  // calls run here, not in the node: VERSION touches no network, and entering the
  // node would add a step to the figure.
  const nodes = await Promise.all(implementations.map((implementation) => BenchNode.create(`start-up, ${implementation.label}`, { resident: implementation.resident })));
  try {
    const input = join(nodes[0]?.sandbox.dir ?? tmpdir(), 'version.json');
    writeFileSync(input, JSON.stringify({ cniVersion }));
    const entries = implementations.flatMap((implementation, index) => {
      const node = nodes[index] as BenchNode;
      const runtime = new Runtime(implementation.pluginDirs, node.sandbox.socketPath, undefined, node);
      return roles.map((role) => ({ runtime, result: { implementation, role, type: implementation.types[role], ms: [] as number[], execMs: [] as number[], failures: 0 } }));
    });
    for (let run = 0; run < runs; run += 1) {
      for (const { runtime, result } of inTurn(entries, run)) {
        const outcome = await runtime.invoke(result.type, 'VERSION', { cniVersion });
        if (outcome.status === 0) result.ms.push(outcome.ms);
        else result.failures += 1;
      }
    }
    for (let round = 0; round * batch < runs; round += 1) {
      for (const { runtime, result } of inTurn(entries, round)) {
        const timed = await execTimed(runtime, result.type, input, Math.min(batch, runs - round * batch));
        result.execMs.push(...timed.ms);
        result.failures += timed.failures;
      }
    }
    return entries.map((entry) => entry.result);
  } finally {
    for (const node of nodes) await node.destroy();
  }
}
