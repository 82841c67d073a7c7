import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { buildGoProgram, goToolchainProblem } from '../../src/sandbox/go-build.js';
import { repoRoot } from '../../src/sandbox/sandbox.js';
import { conflist, type ConfigName, type Implementation } from '../impls.js';
import { log } from '../log.js';
import { BenchNode, cpuBetween, type Container, type DaemonCpu } from '../node.js';
import { execTimer } from '../runtime.js';
import { settleCpu } from '../settle.js';
import { inTurn, warmUpPairs } from '../workload.js';

// The sequential and parallel figures again, with the plugins run by libcni (the
// library containerd, CRI-O and podman embed) from bench/libcni/main.go, and timed by
// its Go clock: the runtime's clock of the runtimes Trestle serves. The other sections
// start every plugin from Node, whose spawn takes about a millisecond of the runtime's
// clock and 0.8 ms of CPU per plugin (Go's os/exec: 0.2 ms), one spawn at a time on
// its thread. libcni also writes its result cache on every ADD, as those runtimes do.
const libcniConfigs: readonly ConfigName[] = ['a', 'c'];

export interface LibcniSequential {
  config: ConfigName;
  // Per implementation, in the order given.
  add: number[][];
  del: number[][];
  failures: string[][];
}

export interface LibcniParallel {
  implementation: Implementation;
  wallMs: number;
  failures: string[];
  daemonCpu: DaemonCpu | undefined;
}

export type LibcniResult = { problem: string } | { implementations: readonly Implementation[]; sequential: LibcniSequential[]; parallel: LibcniParallel[] };

interface DriverOutput {
  add?: number[];
  del?: number[];
  wallMs?: number;
  failures: string[];
}

const driverSource = join(repoRoot, 'bench', 'libcni', 'main.go');

// One implementation's node as the driver runs on it: its configuration list is
// written once, its result cache kept beside it.
interface DriverNode {
  driver: string;
  implementation: Implementation;
  node: BenchNode;
  config: ConfigName;
  conflist: string;
  cacheDir: string;
}

function driverNode(driver: string, implementation: Implementation, node: BenchNode, config: ConfigName): DriverNode {
  const dir = join(node.sandbox.dir, 'libcni');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${config}.conflist`);
  writeFileSync(file, JSON.stringify(conflist(implementation, config, node)));
  return { driver, implementation, node, config, conflist: file, cacheDir: join(dir, 'cache') };
}

// One run of the driver in the node's namespace, on `containers`; the plugins get the
// benchmark's environment with the node's socket, as Runtime gives them.
async function drive(target: DriverNode, mode: 'sequential' | 'parallel', containers: readonly Container[]): Promise<DriverOutput> {
  const { driver, implementation, node, config } = target;
  const plugins = config === 'c' ? 2 : 1;
  // Every plugin call, for the node's check that its daemon served them all: ADD and
  // DEL of each pair (and the driver's untimed first pair), or one ADD each.
  const calls = mode === 'sequential' ? (containers.length + 1) * 2 * plugins : containers.length * plugins;
  for (let call = 0; call < calls; call += 1) node.noteCall();
  const args = ['-conf', target.conflist, '-cni-path', implementation.pluginDirs.join(':'), '-cache-dir', target.cacheDir, '-netns', containers.map((container) => container.path).join(',')];
  if (config === 'c') args.push('-ports');
  const run = await execa(execTimer, [`--net=${node.path}`, '--pass', driver, ...args, mode], { env: { ...process.env, TRESTLE_SOCKET: node.sandbox.socketPath }, reject: false });
  try {
    return JSON.parse(String(run.stdout)) as DriverOutput;
  } catch {
    return { failures: [`bench-libcni exited with status ${run.exitCode}: ${String(run.stderr).trim()}`] };
  }
}

export async function runLibcni(implementations: readonly Implementation[], n: number, roundSize: number, parallelCount: number, parallelRuns: number): Promise<LibcniResult> {
  const problem = await goToolchainProblem();
  if (problem !== undefined) return { problem };
  const driver = await buildGoProgram(driverSource, 'trestle-bench-libcni');
  const sequential: LibcniSequential[] = [];
  for (const config of libcniConfigs) {
    const nodes = await Promise.all(implementations.map((implementation) => BenchNode.create(`libcni ${config}, ${implementation.label}`, { resident: implementation.resident })));
    try {
      const containers = await Promise.all(nodes.map((node) => node.addContainers(roundSize)));
      const targets = implementations.map((implementation, index) => driverNode(driver, implementation, nodes[index] as BenchNode, config));
      const result: LibcniSequential = { config, add: implementations.map(() => []), del: implementations.map(() => []), failures: implementations.map(() => []) };
      log(`libcni ${config}: warm-up`);
      for (const [index, target] of targets.entries()) {
        for (let done = 0; done < warmUpPairs; done += roundSize) await drive(target, 'sequential', (containers[index] ?? []).slice(0, warmUpPairs - done));
      }
      await settleCpu();
      const rounds = Math.ceil(n / roundSize);
      for (let round = 0; round < rounds; round += 1) {
        log(`libcni ${config}: round ${round + 1}/${rounds}`);
        const size = Math.min(roundSize, n - round * roundSize);
        for (const index of inTurn([...implementations.keys()], round)) {
          const output = await drive(targets[index] as DriverNode, 'sequential', (containers[index] ?? []).slice(0, size));
          result.add[index]?.push(...(output.add ?? []));
          result.del[index]?.push(...(output.del ?? []));
          result.failures[index]?.push(...output.failures);
        }
      }
      sequential.push(result);
    } finally {
      for (const node of nodes) await node.destroy();
    }
    await settleCpu();
  }
  const parallel: LibcniParallel[] = [];
  for (let run = 0; run < parallelRuns; run += 1) {
    for (const implementation of inTurn(implementations, run)) {
      log(`libcni parallel: run ${run + 1}/${parallelRuns}, ${implementation.label}`);
      const node = await BenchNode.create(`libcni parallel, ${implementation.label}`, { resident: implementation.resident });
      try {
        const containers = await node.addContainers(parallelCount);
        const target = driverNode(driver, implementation, node, 'c');
        await settleCpu();
        const cpuBefore = node.daemonCpu();
        const output = await drive(target, 'parallel', containers);
        parallel.push({ implementation, wallMs: output.wallMs ?? Number.NaN, failures: output.failures, daemonCpu: cpuBetween(cpuBefore, node.daemonCpu()) });
      } finally {
        await node.destroy();
        await settleCpu();
      }
    }
  }
  return { implementations, sequential, parallel };
}
