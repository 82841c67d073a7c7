import { configTitles, roles, type ConfigName, type Implementation } from './impls.js';
import type { FootprintResult } from './sections/footprint.js';
import type { GrowthResult } from './sections/growth.js';
import { containerCount, type MemoryResult } from './sections/memory.js';
import type { LibcniResult } from './sections/libcni.js';
import type { ParallelRun } from './sections/parallel.js';
import { warmUpPairs } from './workload.js';
import type { SequentialResult } from './sections/sequential.js';
import type { StartupResult } from './sections/startup.js';
import { median, summarize } from './stats.js';
import type { DaemonCall, DaemonCpu } from './node.js';
import type { OpSamples } from './workload.js';

// Markdown tables of a run. Column 0 is always the reference, then each Trestle form
// (one-shot, then with the daemon), each followed by its ratio: that form / reference
// of the p50s. Per-implementation arrays in the results follow the same order.
export interface Results {
  implementations: readonly Implementation[];
  sequential?: { n: number; roundSize: number; results: SequentialResult[] };
  parallel?: { count: number; runs: ParallelRun[] };
  libcni?: LibcniResult;
  // fullLevels: the levels the full mode reaches, to say what a shorter run left out.
  growth?: { window: number; rounds: number; fullLevels: readonly number[]; result: GrowthResult };
  startup?: StartupResult[];
  footprint?: FootprintResult[];
  memory?: { pairs: number; full: number; result: MemoryResult };
}

const ms = (value: number) => (Number.isFinite(value) ? value.toFixed(1) : '–');
const ratio = (trestle: number, reference: number) => (Number.isFinite(trestle / reference) ? (trestle / reference).toFixed(2) : '–');
const thousands = (value: number | undefined) => (value === undefined ? '–' : value.toLocaleString('en-US'));
const mb = (kb: number | undefined) => (kb === undefined || !Number.isFinite(kb) || kb === 0 ? '–' : (kb / 1024).toFixed(1));
// How far apart the daemon's VmRSS readings may be over the last half to count as flat
// (the issue asks for "flat"; a collection cycle moves RSS by a few MB either way).
const flatMb = 5;

function cell(samples: readonly number[], digits = 1): string {
  if (samples.length === 0) return '–';
  const summary = summarize(samples);
  const format = (value: number) => (Number.isFinite(value) ? value.toFixed(digits) : '–');
  return `${format(summary.p50)} / ${format(summary.p90)} / ${format(summary.max)}`;
}

function table(header: string[], rows: string[][]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n');
}

// The two clocks of runtime.ts: the runtime's, and the plugins' own (exec to exit in the node).
type Clock = 'runtime' | 'exec';
const clockTitles: Record<Clock, string> = { runtime: "runtime's clock", exec: 'exec to exit' };
const totals = (samples: OpSamples | undefined, clock: Clock): number[] => (clock === 'runtime' ? samples?.total : samples?.execTotal) ?? [];

function p50(samples: OpSamples | undefined, clock: Clock = 'runtime'): number {
  return samples ? summarize(totals(samples, clock)).p50 : Number.NaN;
}

// The header and cells of a comparison: the reference, then each other form and its ratio.
function compared(implementations: readonly Implementation[]): string[] {
  return [implementations[0]?.label ?? 'reference', ...implementations.slice(1).flatMap((implementation) => [implementation.label, 'ratio'])];
}

function comparedCells(samples: ReadonlyArray<OpSamples | undefined>, count: number, clock: Clock = 'runtime'): string[] {
  const cells = [cell(totals(samples[0], clock))];
  for (let index = 1; index < count; index += 1) cells.push(cell(totals(samples[index], clock)), ratio(p50(samples[index], clock), p50(samples[0], clock)));
  return cells;
}

function daemonP50(calls: readonly DaemonCall[], command: string, plugin: string): number {
  return summarize(calls.filter((call) => call.command === command && call.plugin === plugin).map((call) => call.ms)).p50;
}

function failureNote(label: string, samples: OpSamples | undefined): string[] {
  if (!samples || samples.failures.length === 0) return [];
  return [`- ${label}: ${samples.failures.length} failed, e.g. \`${samples.failures[0]}\``];
}

interface Target {
  what: string;
  measured: number;
  goal: number;
  // Extra condition reported next to the number (e.g. failures).
  also?: { ok: boolean; note: string };
  // Why this run has no figure (a level the short mode does not reach), said instead of one.
  missing?: string;
}

type Form = Exclude<Implementation['key'], 'reference'>;
const formIndex = (results: Results, key: Implementation['key']) => results.implementations.findIndex((implementation) => implementation.key === key);
const formLabel = (results: Results, key: Implementation['key']) => results.implementations[formIndex(results, key)]?.label ?? key;

// A burst of parallel ADDs, from either harness (the parallel section's, libcni's).
interface BurstRun {
  implementation: Implementation;
  wallMs: number;
  failures: readonly string[];
}

const medianWall = (runs: readonly BurstRun[], key: Implementation['key']) => median(runs.filter((run) => run.implementation.key === key).map((run) => run.wallMs));

function wallTarget(what: string, runs: readonly BurstRun[], key: Form, goal: number): Target {
  const failures = runs.filter((run) => run.implementation.key === key).reduce((sum, run) => sum + run.failures.length, 0);
  return { what, measured: medianWall(runs, key) / medianWall(runs, 'reference'), goal, also: { ok: failures === 0, note: `${failures} failures` } };
}

// "Median wall time (ratio to the reference): ..." for each implementation.
function medianWalls(runs: readonly BurstRun[], implementations: readonly Implementation[]): string {
  const reference = medianWall(runs, 'reference');
  const each = implementations.map((implementation) => {
    const value = medianWall(runs, implementation.key);
    return `${implementation.label} ${(value / 1000).toFixed(2)} s${implementation.key === 'reference' ? '' : ` (${ratio(value, reference)})`}`;
  });
  return `Median wall time (ratio to the reference): ${each.join('; ')}.`;
}

function sequentialTarget(results: Results, key: Form, config: ConfigName, op: 'ADD' | 'DEL', goal: number, clock: Clock = 'runtime'): Target[] {
  const result = results.sequential?.results.find((candidate) => candidate.config === config);
  if (!result) return [];
  const samples = op === 'ADD' ? result.add : result.del;
  const what = `config ${config} ${op}, ${formLabel(results, key)} / reference p50${clock === 'runtime' ? '' : ` (${clockTitles[clock]})`}`;
  return [{ what, measured: p50(samples[formIndex(results, key)], clock) / p50(samples[0], clock), goal }];
}

function parallelTarget(results: Results, key: Form, goal: number): Target[] {
  const parallel = results.parallel;
  if (!parallel) return [];
  return [wallTarget(`${parallel.count} parallel ADDs of config c, ${formLabel(results, key)} / reference wall (median of runs)`, parallel.runs, key, goal)];
}

// ADD (window p50) at 1,000 containers against 10: a shorter run says so instead of
// putting another level's figure in the target's place.
function growthTarget(results: Results, key: Form, goal: number, clock: Clock = 'runtime'): Target[] {
  const growth = results.growth;
  if (!growth) return [];
  const [from, to] = [10, 1000];
  const at = (containers: number) => growth.result.levels.find((level) => level.containers === containers);
  const what = `${formLabel(results, key)} ADD at ${thousands(to)} / ADD at ${from} containers (window p50${clock === 'runtime' ? '' : `, ${clockTitles[clock]}`})`;
  const [low, high] = [at(from), at(to)];
  const index = formIndex(results, key);
  if (low && high) return [{ what, measured: p50(high.add[index], clock) / p50(low.add[index], clock), goal }];
  const reached = growth.result.levels.map((level) => thousands(level.containers)).join(', ');
  const full = growth.fullLevels.includes(to) ? `; \`--full\` reaches ${thousands(to)}` : '';
  return [{ what, measured: Number.NaN, goal, missing: `not measured: this run's levels are ${reached}${full}` }];
}

// Issue 6's growth goal; one-shot goals as the start-up issue set them; the daemon's as
// issue 10 sets them.
const sequentialGoals = {
  trestle: [['c', 'ADD', 0.5], ['c', 'DEL', 0.3], ['b', 'ADD', 0.8], ['b', 'DEL', 0.5]],
  daemon: [['c', 'ADD', 0.25], ['c', 'DEL', 0.25], ['a', 'ADD', 0.8]],
} as const;
const parallelGoals = { trestle: 0.3, daemon: 0.2 } as const;
const growthGoal = 1.2;

function earlierTargets(results: Results): Target[] {
  const found: Target[] = [];
  const forms = (['trestle', 'daemon'] as const).filter((key) => formIndex(results, key) > 0);
  for (const key of forms) for (const [config, op, goal] of sequentialGoals[key]) found.push(...sequentialTarget(results, key, config, op, goal));
  for (const key of forms) found.push(...parallelTarget(results, key, parallelGoals[key]));
  for (const key of forms) found.push(...growthTarget(results, key, growthGoal));
  const oneShot = results.footprint?.find((result) => result.implementation.key === 'trestle');
  if (oneShot) {
    found.push({ what: `${oneShot.implementation.label} peak RSS of one ADD, largest plugin (MB)`, measured: Math.max(...Object.values(oneShot.rssKb)) / 1024, goal: 60 });
  }
  const clientRuns = results.startup?.filter((entry) => entry.implementation.key === 'daemon');
  if (clientRuns && clientRuns.length > 0) {
    found.push({
      what: `client start-up + VERSION round trip through the daemon, exec-timer p50, slowest plugin name (ms)`,
      measured: Math.max(...clientRuns.map((entry) => summarize(entry.execMs).p50)),
      goal: 1,
    });
  }
  const memory = results.memory;
  if (memory) {
    const samples = memory.result.samples;
    const last = samples.at(-1);
    const half = samples.find((sample) => sample.pairs >= (last?.pairs ?? 0) / 2);
    const short = memory.pairs < memory.full ? ` (short mode: ${thousands(memory.pairs)} pairs, not ${thousands(memory.full)})` : '';
    found.push({ what: `daemon VmRSS after ${thousands(last?.pairs)} ADD/DEL pairs of config a (MB)${short}`, measured: (last?.rssKb ?? Number.NaN) / 1024, goal: 80 });
    const halfRss = samples.filter((sample) => sample.pairs >= (half?.pairs ?? 0)).map((sample) => sample.rssKb);
    found.push({
      what: `daemon VmRSS spread over pairs ${thousands(half?.pairs)}–${thousands(last?.pairs)}, max − min (MB; "flat")${short}`,
      measured: (Math.max(...halfRss) - Math.min(...halfRss)) / 1024,
      goal: flatMb,
      also: { ok: memory.result.failures.length === 0, note: `${memory.result.failures.length} failed pairs` },
    });
  }
  return found;
}

// Issue 11 (no process per call): every figure in resident mode, against the reference.
const residentSequentialGoals = [['a', 'ADD', 0.3], ['a', 'DEL', 0.3], ['c', 'ADD', 0.15], ['c', 'DEL', 0.15]] as const;
const residentParallelGoal = 0.1;
const residentGrowthGoal = 1.1;

// The issue's figures are a runtime's: libcni's clock, the library containerd, CRI-O
// and podman start plugins with. The same goals on the Node harness's clock and exec
// to exit stay beside them as cross-checks: Node's spawn, which no Go runtime pays,
// weighs most on the shortest calls. Without libcni (no Go here), the Node harness
// stands in. Growth has no libcni run: its rows are the harness's on both clocks.
interface ResidentTargets {
  runtime: 'libcni' | 'node';
  issue: Target[];
  crossChecks: Target[];
}

function residentTargets(results: Results): ResidentTargets | undefined {
  if (formIndex(results, 'daemon') <= 0) return undefined;
  const clocks: Clock[] = ['runtime', 'exec'];
  const harness = residentSequentialGoals.flatMap(([config, op, goal]) => clocks.flatMap((clock) => sequentialTarget(results, 'daemon', config, op, goal, clock)));
  harness.push(...parallelTarget(results, 'daemon', residentParallelGoal));
  const growth = clocks.flatMap((clock) => growthTarget(results, 'daemon', residentGrowthGoal, clock));
  const libcni = libcniTargets(results);
  if (libcni.length === 0) return { runtime: 'node', issue: [...harness, ...growth], crossChecks: [] };
  return { runtime: 'libcni', issue: [...libcni, ...growth], crossChecks: harness };
}

function libcniTargets(results: Results): Target[] {
  const libcni = results.libcni;
  if (!libcni || 'problem' in libcni) return [];
  const daemon = libcni.implementations.findIndex((implementation) => implementation.key === 'daemon');
  const label = libcni.implementations[daemon]?.label ?? 'daemon';
  const found: Target[] = [];
  for (const [config, op, goal] of residentSequentialGoals) {
    const result = libcni.sequential.find((candidate) => candidate.config === config);
    if (!result) continue;
    const samples = op === 'ADD' ? result.add : result.del;
    const failures = result.failures[daemon]?.length ?? 0;
    found.push({
      what: `config ${config} ${op}, ${label} / reference p50 (libcni's clock)`,
      measured: summarize(samples[daemon] ?? []).p50 / summarize(samples[0] ?? []).p50,
      goal,
      also: { ok: failures === 0, note: `${failures} failures` },
    });
  }
  if (libcni.parallel.length > 0) found.push(wallTarget(`parallel ADDs of config c, ${label} / reference wall (median of runs, libcni's clock)`, libcni.parallel, 'daemon', residentParallelGoal));
  return found;
}

// What the Node harness's clock charges a call that does nothing (VERSION through the
// daemon), against the reference's config a ADD: the part of that row's ratio that is
// the harness's own.
function harnessFloor(results: Results): string {
  const version = results.startup?.filter((entry) => entry.implementation.key === 'daemon') ?? [];
  const referenceAdd = p50(results.sequential?.results.find((result) => result.config === 'a')?.add[0]);
  if (version.length === 0 || !Number.isFinite(referenceAdd)) return '';
  const fastest = Math.min(...version.map((entry) => summarize(entry.ms).p50));
  return ` On the harness's clock a call through the daemon that does nothing (VERSION, fastest plugin name) takes ${fastest.toFixed(1)} ms, ${(fastest / referenceAdd).toFixed(2)} of the reference's config a ADD.`;
}

function targetTable(list: readonly Target[]): string {
  const rows = list.map((target) => {
    if (target.missing !== undefined) return [target.what, `– (${target.missing})`, `≤ ${target.goal}`, 'n/a'];
    const met = Number.isFinite(target.measured) && target.measured <= target.goal && (target.also?.ok ?? true);
    const measured = `${Number.isFinite(target.measured) ? target.measured.toFixed(2) : '–'}${target.also ? ` (${target.also.note})` : ''}`;
    return [target.what, measured, `≤ ${target.goal}`, Number.isFinite(target.measured) ? (met ? 'met' : 'missed') : 'n/a'];
  });
  return table(['target', 'measured', 'goal', ''], rows);
}

function targetsSection(results: Results): string {
  const resident = residentTargets(results);
  const earlier = earlierTargets(results);
  const residentParts: string[] = [];
  if (resident?.runtime === 'libcni') {
    residentParts.push(
      "Issue 11 (no process per call), resident mode against the reference, on a runtime's clock: libcni's (the plugins run and timed as containerd, CRI-O and podman run them, see \"Through libcni\"); growth, which libcni does not run, on the Node harness's clocks:",
      targetTable(resident.issue),
      `The same goals on the Node harness's clock and exec to exit, cross-checks: the harness starts each plugin with Node's spawn of exec-timer, which then enters the node's namespace: costs of the harness that a Go runtime does not pay (the "spawn" column of the sequential section).${harnessFloor(results)}`,
      targetTable(resident.crossChecks),
    );
  } else if (resident) {
    residentParts.push("Issue 11 (no process per call), resident mode against the reference, on the Node harness's clocks (libcni's did not run):", targetTable(resident.issue));
  }
  return [
    '## Targets',
    ...residentParts,
    ...(earlier.length > 0 ? ["Earlier issues' targets, still checked (issue 6's growth, the start-up issue's one-shot figures, issue 10's with the daemon):", targetTable(earlier)] : []),
  ].join('\n\n');
}

function sequentialSection(results: Results): string {
  const sequential = results.sequential;
  if (!sequential) return '';
  const { implementations } = results;
  const count = implementations.length;
  const rows: string[][] = [];
  const execRows: string[][] = [];
  const perPlugin: string[][] = [];
  const notes: string[] = [];
  const inside: string[][] = [];
  for (const result of sequential.results) {
    for (const [op, samples] of [['ADD', result.add], ['DEL', result.del]] as const) {
      rows.push([configTitles[result.config], op, ...comparedCells(samples, count)]);
      execRows.push([configTitles[result.config], op, ...comparedCells(samples, count, 'exec')]);
      for (const [index, implementation] of implementations.entries()) {
        if (!implementation.resident) continue;
        for (const role of roles) {
          const runtime = summarize(samples[index]?.byRole.get(role) ?? []).p50;
          const exec = summarize(samples[index]?.execByRole.get(role) ?? []).p50;
          const daemon = daemonP50(result.daemonCalls[index] ?? [], op, implementation.types[role]);
          if (!Number.isFinite(runtime)) continue;
          inside.push([result.config, op, implementation.types[role], ms(runtime), ms(exec), ms(daemon), ms(runtime - exec), ms(exec - daemon)]);
        }
      }
      for (const role of roles) {
        const byRole = samples.map((entry) => entry?.byRole.get(role));
        if (byRole.every((entry) => !entry)) continue;
        const p50s = byRole.map((entry) => summarize(entry ?? []).p50);
        const [refP50 = Number.NaN] = p50s;
        perPlugin.push([result.config, op, role, ms(refP50), ...p50s.slice(1).flatMap((value) => [ms(value), ratio(value, refP50)])]);
      }
      for (const [index, implementation] of implementations.entries()) notes.push(...failureNote(`config ${result.config} ${op} ${implementation.label}`, samples[index]));
    }
  }
  return [
    `## Sequential ADD and DEL (ms)\n\nN = ${sequential.n} per implementation and operation, in alternating rounds of ${sequential.roundSize} (at most ${sequential.roundSize} containers on the bridge), each node (a fresh one per configuration) having first served ${warmUpPairs} untimed ADD/DEL pairs, so that a daemon is timed warm, as it runs on a node; p50 / p90 / max.\n`,
    table(['config', 'op', ...compared(implementations)], rows),
    `\nThe same calls, exec to exit: each plugin timed inside the node by bench/exec-timer.c, summed over the chain; without Node's spawn of exec-timer and exec-timer's entry into the node's namespace (the same for every implementation; how much, in the daemon's table below: "spawn"), which the runtime's clock above includes:\n`,
    table(['config', 'op', ...compared(implementations)], execRows),
    `\nPer plugin, p50 ms (the bridge's time includes its IPAM delegate):\n`,
    table(['config', 'op', 'plugin', ...compared(implementations)], perPlugin),
    ...(inside.length > 0
      ? [
          `\nWith the daemon, per plugin, p50 ms: the runtime's time; exec to exit (the client's run); the daemon's own (its log line: request read to answer); and the differences: the runtime's spawn (runtime − exec: Node's spawn of exec-timer, its start and its setns into the node), the client's start-up and round trip (exec − daemon):\n`,
          table(['config', 'op', 'plugin', 'runtime', 'exec to exit', 'inside the daemon', 'spawn', 'client + round trip'], inside),
        ]
      : []),
    notes.length > 0 ? `\n${notes.join('\n')}` : '',
  ].join('\n');
}

// The daemon's CPU over a burst: its main thread runs every call's JavaScript and
// netlink requests one at a time, so its total bounds the wall time from below.
const cpuHeader = ['daemon CPU ms, main thread', 'all threads'];
const cpuCells = (cpu: DaemonCpu | undefined) => (cpu ? [cpu.mainMs.toFixed(0), cpu.allMs.toFixed(0)] : ['–', '–']);

function libcniSection(results: Results): string {
  const libcni = results.libcni;
  if (!libcni) return '';
  const title = "## Through libcni, on a Go runtime's clock (ms)";
  if ('problem' in libcni) return `${title}\n\nNot run: ${libcni.problem}.`;
  const { implementations } = libcni;
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const result of libcni.sequential) {
    for (const [op, samples] of [['ADD', result.add], ['DEL', result.del]] as const) {
      const [reference = []] = samples;
      rows.push([configTitles[result.config], op, cell(reference), ...samples.slice(1).flatMap((own) => [cell(own), ratio(summarize(own).p50, summarize(reference).p50)])]);
    }
    for (const [index, implementation] of implementations.entries()) {
      const failures = result.failures[index] ?? [];
      if (failures.length > 0) notes.push(`- config ${result.config}, ${implementation.label}: ${failures.length} failed (first: ${failures[0]})`);
    }
  }
  const runs = libcni.parallel.map((run) => [run.implementation.label, (run.wallMs / 1000).toFixed(2), String(run.failures.length), ...cpuCells(run.daemonCpu)]);
  const runCount = libcni.parallel.filter((run) => run.implementation.key === 'reference').length;
  return [
    `${title}\n\nThe sequential and parallel runs again, each plugin chain run by libcni (bench/libcni/main.go), the library containerd, CRI-O and podman run plugins with, and timed by its Go clock: what those runtimes wait for. The sections above start every plugin from Node, whose spawn adds about a millisecond to each call and 0.8 ms of CPU (Go's os/exec: 0.2 ms), one spawn at a time. libcni also writes its result cache on each ADD and reads it on each DEL, as those runtimes do. Sequential: config a and c, ${warmUpPairs} untimed pairs per node first, then alternating rounds; p50 / p90 / max:\n`,
    table(['config', 'op', ...compared(implementations)], rows),
    `\n${runCount} run(s) of ADDs of config c started at once (one goroutine each), fresh node and daemon:\n`,
    table(['implementation', 'wall s', 'failures', ...cpuHeader], runs),
    `\n${medianWalls(libcni.parallel, implementations)}`,
    notes.length > 0 ? `\n${notes.join('\n')}` : '',
  ].join('\n');
}

function parallelSection(results: Results): string {
  const parallel = results.parallel;
  if (!parallel) return '';
  const rows = parallel.runs.map((run) => [
    run.implementation.label,
    (run.wallMs / 1000).toFixed(2),
    String(run.failures.length),
    String(run.duplicateAddresses),
    String(run.ruleset.rules),
    String(run.ruleset.duplicates),
    ...cpuCells(run.daemonCpu),
  ]);
  const inside = parallel.runs.flatMap((run) => {
    if (run.daemonCalls.length === 0) return [];
    const plugins = [...new Set(run.daemonCalls.map((call) => call.plugin))];
    const each = plugins.map((plugin) => `${plugin} ${cell(run.daemonCalls.filter((call) => call.plugin === plugin).map((call) => call.ms))}`);
    return [`- ${run.implementation.label}, ms inside the daemon per call (p50 / p90 / max): ${each.join('; ')}`];
  });
  const notes = parallel.runs.flatMap((run) => [
    ...(run.failures.length > 0 ? [`- ${run.implementation.label} failure: \`${run.failures[0]}\``] : []),
    ...run.ruleset.examples.map((example) => `- ${run.implementation.label} duplicated rule: \`${example}\``),
  ]);
  return [
    `## ${parallel.count} ADDs of config c in parallel, fresh node\n\nA node's first burst: its daemon, started just before, serves its first calls (no warm-up, unlike the other sections). Rules: rule lines in the node's ruleset (Trestle: \`nft list ruleset\`; reference: \`iptables-save\`); duplicated: extra copies of an identical rule in the same chain. Daemon CPU: what the daemon used over the burst (/proc), its main thread (which runs the calls one at a time, so its total bounds the wall time from below) and all its threads (V8's compiler and GC, libuv's pool).\n`,
    table(['implementation', 'wall s', 'failures', 'duplicate addresses', 'rules', 'duplicated rules', ...cpuHeader], rows),
    `\n${medianWalls(parallel.runs, results.implementations)}`,
    inside.length > 0 ? `\n${inside.join('\n')}` : '',
    notes.length > 0 ? `\n${notes.join('\n')}` : '',
  ].join('\n');
}

function growthSection(results: Results): string {
  const growth = results.growth;
  if (!growth) return '';
  const { implementations } = results;
  const count = implementations.length;
  const rows: string[][] = [];
  const notes: string[] = [];
  let previous = 0;
  const [first] = growth.result.levels;
  for (const level of growth.result.levels) {
    rows.push([String(level.containers), `ADD ${previous + 1}–${level.containers} (fill)`, ...comparedCells(level.fill, count)]);
    for (const [op, samples] of [['ADD', level.add], ['DEL', level.del]] as const) rows.push([String(level.containers), `${op} (window)`, ...comparedCells(samples, count)]);
    if (first && level !== first) {
      for (const clock of ['runtime', 'exec'] as const) {
        const growthRatio = (index: number) => ratio(p50(level.add[index], clock), p50(first.add[index], clock));
        rows.push([String(level.containers), `ADD (window) ÷ at ${first.containers}, ${clockTitles[clock]}`, growthRatio(0), ...implementations.slice(1).flatMap((_, index) => [growthRatio(index + 1), ''])]);
      }
    }
    rows.push([String(level.containers), 'rules in ruleset', String(level.rules[0] ?? '–'), ...level.rules.slice(1).flatMap((rules) => [String(rules), ''])]);
    for (const [index, implementation] of implementations.entries()) {
      for (const [what, samples] of [['fill', level.fill[index]], ['ADD', level.add[index]], ['DEL', level.del[index]]] as const) {
        notes.push(...failureNote(`${level.containers} containers, ${what}, ${implementation.label}`, samples));
      }
    }
    previous = level.containers;
  }
  const skipped = growth.fullLevels.filter((containers) => !growth.result.levels.some((level) => level.containers === containers));
  const cleanup = growth.result.cleanup.map((entry, index) => [
    implementations[index]?.label ?? '',
    String(entry.containers),
    (entry.deleteMs / 1000).toFixed(2),
    `${(entry.settleMs / 1000).toFixed(1)}${entry.settled ? '' : ' (still busy)'}`,
  ]);
  return [
    `## Growth: config c on one bridge (ms)\n\nEach implementation alone on the machine, on a node of its own removed before the next starts (a node runs one plugin; another implementation's thousand containers on the same kernel slow every link change). After ${warmUpPairs} untimed ADD/DEL pairs on the empty node, at each level, ${growth.rounds} windows of ${growth.window} ADDs then their ${growth.window} DELs; p50 / p90 / max. "ADD (window) ÷ at ${first?.containers}": that level's ADD p50 over the first level's, per implementation, on the runtime's clock and exec to exit (see the sequential section).${skipped.length > 0 ? ` Levels stop at ${thousands(growth.result.levels.at(-1)?.containers)} in this run: \`--full\` adds ${skipped.map(thousands).join(', ')}.` : ''}\n`,
    table(['containers', 'op', ...compared(implementations)], rows),
    notes.length > 0 ? `\n${notes.join('\n')}` : '',
    `\nRemoving a node with its containers (\`ip netns del\`, then until the CPU is idle again), one after the other in this order:\n`,
    table(['implementation', 'namespaces', 'delete s', 'CPU busy after s'], cleanup),
  ].join('\n');
}

function startupSection(results: Results): string {
  const startup = results.startup;
  if (!startup) return '';
  const [reference] = results.implementations;
  // The reference first, then each Trestle form timed (one-shot, daemon, and the single executable when built).
  const timed = [...new Set(startup.map((entry) => entry.implementation))].filter((implementation) => implementation !== reference);
  const find = (implementation: unknown, role: string) => startup.find((entry) => entry.implementation === implementation && entry.role === role);
  const rows = (samples: (entry: StartupResult | undefined) => number[], digits: number) =>
    roles.map((role) => {
      const ref = samples(find(reference, role));
      const name = timed.map((implementation) => find(implementation, role)?.type).find((type) => type !== undefined);
      return [
        `${find(reference, role)?.type} / ${name}`,
        cell(ref, digits),
        ...timed.flatMap((implementation) => {
          const ours = samples(find(implementation, role));
          return [cell(ours, digits), ratio(summarize(ours).p50, summarize(ref).p50)];
        }),
      ];
    });
  const header = ['plugin', reference?.label ?? 'reference', ...timed.flatMap((implementation) => [implementation.label, 'ratio'])];
  const runs = startup[0]?.ms.length ?? 0;
  const failures = startup.filter((entry) => entry.failures > 0).map((entry) => `- ${entry.implementation.label} ${entry.type}: ${entry.failures} VERSION calls failed`);
  return [
    `## Start-up floor: VERSION (ms, ${runs} runs each)\n\nThe runtime's environment is passed on as it is (${process.env['NODE_EXTRA_CA_CERTS'] ? 'here it sets' : 'here it does not set'} NODE_EXTRA_CA_CERTS, which makes Node load a CA bundle at start-up: the script form's launcher unsets it before Node starts, a single executable cannot). "trestle" is the native client finding no daemon on its socket and running the one-shot Node plugin; "trestle (daemon)" is the client's own start-up plus its round trip to a daemon, which answers VERSION.\n\nTimed as every other section times a call (Node's spawn, which adds about a millisecond):\n`,
    table(header, rows((entry) => entry?.ms ?? [], 1)),
    `\nTimed by exec-timer (bench/exec-timer.c: posix_spawn and waitpid from a static program, microseconds of its own):\n`,
    table(header, rows((entry) => entry?.execMs ?? [], 2)),
    failures.length > 0 ? `\n${failures.join('\n')}` : '',
  ].join('\n');
}

function footprintSection(results: Results): string {
  const footprint = results.footprint;
  if (!footprint) return '';
  const rows = footprint.flatMap((result) =>
    roles.map((role) => {
      const processes = (command: 'ADD' | 'DEL') => {
        const entry = result.processes[command].find((candidate) => candidate.role === role);
        if (result.daemon) return 'none (the daemon runs them)';
        return entry ? `${entry.count}${entry.programs ? ` (${entry.programs})` : ''}` : '–';
      };
      return [result.implementation.label, result.implementation.types[role], mb(result.rssKb[role]), processes('ADD'), processes('DEL')];
    }),
  );
  const daemons = footprint.flatMap((result) => {
    const daemon = result.daemon;
    if (!daemon) return [];
    const processes = (entry: { count: number; programs: string }) => `${entry.count}${entry.programs ? ` (${entry.programs})` : ''}`;
    return [[result.implementation.label, mb(daemon.rssKb.fresh), mb(daemon.rssKb.after), processes(daemon.processes.ADD), processes(daemon.processes.DEL)]];
  });
  const notes = footprint.flatMap((result) => result.failures.map((failure) => `- ${result.implementation.label}: \`${failure}\``));
  return [
    '## One ADD / DEL of config c: peak RSS and processes started\n\nRSS: GNU time %M of the plugin (largest of it and its helpers; the IPAM plugin called alone); with the daemon, of the client. Processes: started by the plugin, from strace; the bridge\'s include its IPAM delegate and the delegate\'s own.\n',
    table(['implementation', 'plugin', 'peak RSS MB', 'processes on ADD', 'processes on DEL'], rows),
    ...(daemons.length > 0
      ? [
          '\nThe daemon: VmRSS when started and after this section\'s calls; processes it started for the whole chain (bridge with its IPAM delegate, then portmap), from strace attached to it:\n',
          table(['implementation', 'VmRSS started MB', 'VmRSS after MB', 'processes on ADD', 'processes on DEL'], daemons),
        ]
      : []),
    notes.length > 0 ? `\n${notes.join('\n')}` : '',
  ].join('\n');
}

function memorySection(results: Results): string {
  const memory = results.memory;
  if (!memory) return '';
  const { samples, failures } = memory.result;
  const rows = samples.map((sample) => [thousands(sample.pairs), mb(sample.rssKb), sample.seconds.toFixed(0), sample.pairs > 0 ? ms((sample.seconds / sample.pairs) * 1000) : '–']);
  const short = memory.pairs < memory.full ? ` Short mode: ${thousands(memory.pairs)} pairs; \`--full\` runs ${thousands(memory.full)}.` : '';
  return [
    `## The daemon's memory over ${thousands(memory.pairs)} ADD/DEL pairs of config a\n\nOne pair after the other on ${containerCount} container namespaces in turn; VmRSS from /proc/<pid>/status.${short}\n`,
    table(['pairs', 'VmRSS MB', 'elapsed s', 'ms a pair (mean so far)'], rows),
    failures.length > 0 ? `\n- ${failures.length} calls failed, e.g. \`${failures[0]}\`` : '',
  ].join('\n');
}

export function renderReport(results: Results, header: string): string {
  return [header, targetsSection(results), sequentialSection(results), parallelSection(results), libcniSection(results), growthSection(results), startupSection(results), footprintSection(results), memorySection(results)]
    .filter((section) => section !== '')
    .join('\n\n')
    .concat('\n');
}
