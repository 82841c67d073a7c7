// `make bench`: Trestle against the reference plugins, in sandbox namespaces only.
// A benchmark, not a test: it reports, it never fails on a number.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot } from '../src/sandbox/sandbox.js';
import { prepareDisk, type BenchDisk } from './disk.js';
import { cniVersion, reference, residentSide, roles, trestleSide, type Role } from './impls.js';
import { log } from './log.js';
import { BenchNode, daemonTrouble, destroyAllNodes } from './node.js';
import { renderReport, type Results } from './report.js';
import { runFootprint } from './sections/footprint.js';
import { runGrowth } from './sections/growth.js';
import { runLibcni } from './sections/libcni.js';
import { runMemory } from './sections/memory.js';
import { runParallel } from './sections/parallel.js';
import { runSequential } from './sections/sequential.js';
import { runStartup, singleExecutable } from './sections/startup.js';
import { unsettled } from './settle.js';

const sections = ['startup', 'footprint', 'sequential', 'parallel', 'libcni', 'growth', 'memory'] as const;
type Section = (typeof sections)[number];

// The reference needs minutes to fill a bridge with a thousand port-mapped
// containers, so the short mode stops at a hundred. The daemon's 10,000 ADD/DEL pairs
// take longer than the whole short mode should: it runs a thousand.
const fullMemoryPairs = 10_000;
const modes = {
  short: { n: 20, roundSize: 10, parallel: 50, parallelRuns: 1, levels: [10, 100], window: 10, windowRounds: 2, versionRuns: 20, memoryPairs: 1_000, memoryEvery: 100 },
  full: { n: 100, roundSize: 10, parallel: 50, parallelRuns: 3, levels: [10, 100, 1000], window: 10, windowRounds: 4, versionRuns: 50, memoryPairs: fullMemoryPairs, memoryEvery: 1_000 },
};

function quiet(file: string, args: string[]): string {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

const load = () => loadavg().map((value) => value.toFixed(2)).join(' ');
const loadAtStart = load();

function header(mode: keyof typeof modes, trestleLabel: string, residentLabel: string, unusable: string[], elapsedS: number, diskDescription: string): string {
  const commit = quiet('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD']);
  return [
    `# Trestle benchmark (${mode} mode)`,
    '',
    `- date: ${new Date().toISOString().replace('T', ' ').slice(0, 16)} UTC, took ${(elapsedS / 60).toFixed(1)} min`,
    `- machine: ${availableParallelism()} CPUs (${cpus()[0]?.model ?? 'unknown'}), kernel ${release()}, node ${process.version}; load average (1, 5, 15 min) ${loadAtStart} at the start, ${load()} at the end`,
    `- reference: containernetworking-plugins ${quiet('dpkg-query', ['-W', '-f=${Version}', 'containernetworking-plugins'])}, ${quiet('iptables', ['--version'])}, ${quiet('nft', ['--version'])}`,
    `- Trestle: working tree at commit ${commit}; columns "${trestleLabel}" (one-shot: the native client finds no daemon on its node's socket and runs the Node plugin) and "${residentLabel}" (the same executables, a \`trestle daemon\` started in each node's namespace on that socket)${unusable.length > 0 ? `; not answering VERSION ${cniVersion}, so replaced by the reference: ${unusable.join(', ')}` : ''}`,
    `- ${diskDescription}; Trestle's state directory on a tmpfs, as /run is on a node`,
    ...(unsettled > 0 ? [`- noisy: ${unsettled} time(s) the CPU was still busy when the run had waited long enough after removing namespaces (other work on the machine?)`] : []),
    ...daemonTrouble.map((trouble) => `- daemon trouble: ${trouble}`),
    '- all run with cniVersion 1.0.0, plugins invoked as a runtime does (environment, stdin, prevResult chaining) inside a sandbox node namespace; ratio = that Trestle form / reference of the p50s',
  ].join('\n');
}

async function main(): Promise<void> {
  // The tests' switch (a daemon in every sandbox) would put one under the reference and
  // the one-shot columns too: here each implementation decides.
  delete process.env['TRESTLE_TEST_MODE'];
  const { values } = parseArgs({
    options: { full: { type: 'boolean', default: false }, only: { type: 'string' }, parts: { type: 'string' }, help: { type: 'boolean', default: false } },
  });
  if (values.help) {
    process.stdout.write(
      [
        `usage: node dist/bench.mjs [--full] [--only=${sections.join(',')}] [--parts=${roles.join(',')}]`,
        '  --full   N = 100, growth to 1,000 containers, 10,000 ADD/DEL pairs for the daemon\'s memory; writes bench/RESULTS.md when every section and part ran',
        '  --only   run these sections',
        '  --parts  Trestle plugins to use on the Trestle side (the reference plugin for the others)',
        '',
      ].join('\n'),
    );
    return;
  }
  const parts = (values.parts?.split(',') ?? [...roles]) as Role[];
  const unknownParts = parts.filter((part) => !roles.includes(part));
  if (unknownParts.length > 0) throw new Error(`unknown part ${unknownParts.join(', ')}; parts: ${roles.join(', ')}`);
  const only = values.only?.split(',') ?? [...sections];
  const unknown = only.filter((name) => !(sections as readonly string[]).includes(name));
  if (unknown.length > 0) throw new Error(`unknown section ${unknown.join(', ')}; sections: ${sections.join(', ')}`);
  if (process.getuid?.() !== 0) throw new Error('the benchmark creates network namespaces: run it as root');
  const chosen = (section: Section) => only.includes(section);
  disk = await prepareDisk();
  const mode = values.full ? 'full' : 'short';
  const plan = modes[mode];
  const started = performance.now();

  // Which Trestle plugins answer, asked one-shot through a node's empty socket.
  const probe = await BenchNode.create('VERSION probe');
  const { implementation: trestle, unusable } = await trestleSide(parts, probe.sandbox.socketPath).finally(() => probe.destroy());
  const resident = residentSide(trestle);
  log(`${mode} mode; comparing ${reference.label} with ${trestle.label} and ${resident.label}`);
  const implementations = [reference, trestle, resident] as const;
  const results: Results = { implementations };
  if (chosen('startup')) {
    const sea = singleExecutable(trestle);
    try {
      results.startup = await runStartup(sea ? [...implementations, sea.implementation] : implementations, plan.versionRuns);
    } finally {
      sea?.cleanup();
    }
  }
  if (chosen('footprint')) results.footprint = await runFootprint(implementations);
  if (chosen('sequential')) results.sequential = { n: plan.n, roundSize: plan.roundSize, results: await runSequential(implementations, plan.n, plan.roundSize) };
  if (chosen('parallel')) results.parallel = { count: plan.parallel, runs: await runParallel(implementations, plan.parallel, plan.parallelRuns) };
  // Through libcni, the issue's resident-mode figures only: the one-shot form's goals
  // were set on Node's clock, and its 30-40 ms calls gain little from a faster spawn.
  if (chosen('libcni')) results.libcni = await runLibcni([reference, resident], plan.n, plan.roundSize, plan.parallel, plan.parallelRuns);
  if (chosen('growth')) {
    const result = await runGrowth(implementations, plan.levels, plan.window, plan.windowRounds);
    results.growth = { window: plan.window, rounds: plan.windowRounds, fullLevels: modes.full.levels, result };
  }
  if (chosen('memory')) results.memory = { pairs: plan.memoryPairs, full: fullMemoryPairs, result: await runMemory(resident, plan.memoryPairs, plan.memoryEvery) };

  const report = renderReport(results, header(mode, trestle.label, resident.label, unusable, (performance.now() - started) / 1000, disk.description));
  process.stdout.write(`\n${report}`);
  if (mode === 'full' && only.length === sections.length && parts.length === roles.length) {
    writeFileSync(join(repoRoot, 'bench', 'RESULTS.md'), report);
    log('wrote bench/RESULTS.md');
  }
}

// Ctrl-C or a kill must still remove every namespace the run created, and the disk.
let disk: BenchDisk | undefined;
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: removing the sandbox namespaces`);
    void destroyAllNodes()
      .then(() => disk?.release())
      .finally(() => process.exit(130));
  });
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
} finally {
  await destroyAllNodes();
  await disk?.release();
}
