import { configTitles, roles, type Implementation } from './impls.js';
import type { FootprintResult } from './sections/footprint.js';
import type { GrowthResult } from './sections/growth.js';
import { containerCount, type MemoryResult } from './sections/memory.js';
import type { ParallelRun } from './sections/parallel.js';
import type { SequentialResult } from './sections/sequential.js';
import type { StartupResult } from './sections/startup.js';
import { median, summarize } from './stats.js';
import type { DaemonCall } from './node.js';
import type { OpSamples } from './workload.js';

// Markdown tables of a run. Column 0 is always the reference, then each Trestle form
// (one-shot, then with the daemon), each followed by its ratio: that form / reference
// of the p50s. Per-implementation arrays in the results follow the same order.
export interface Results {
  implementations: readonly Implementation[];
  sequential?: { n: number; roundSize: number; results: SequentialResult[] };
  parallel?: { count: number; runs: ParallelRun[] };
  growth?: { window: number; rounds: number; result: GrowthResult };
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

function p50(samples: OpSamples | undefined): number {
  return samples ? summarize(samples.total).p50 : Number.NaN;
}

// The header and cells of a comparison: the reference, then each other form and its ratio.
function compared(implementations: readonly Implementation[]): string[] {
  return [implementations[0]?.label ?? 'reference', ...implementations.slice(1).flatMap((implementation) => [implementation.label, 'ratio'])];
}

function comparedCells(samples: ReadonlyArray<OpSamples | undefined>, count: number): string[] {
  const cells = [cell(samples[0]?.total ?? [])];
  for (let index = 1; index < count; index += 1) cells.push(cell(samples[index]?.total ?? []), ratio(p50(samples[index]), p50(samples[0])));
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
}

// One-shot goals as the start-up issue set them; the daemon's as issue 10 sets them.
const sequentialGoals = {
  trestle: [['c', 'ADD', 0.5], ['c', 'DEL', 0.3], ['b', 'ADD', 0.8], ['b', 'DEL', 0.5]],
  daemon: [['c', 'ADD', 0.25], ['c', 'DEL', 0.25], ['a', 'ADD', 0.8]],
} as const;
const parallelGoals = { trestle: 0.3, daemon: 0.2 } as const;

function targets(results: Results): Target[] {
  const found: Target[] = [];
  const index = (key: Implementation['key']) => results.implementations.findIndex((implementation) => implementation.key === key);
  const forms = (['trestle', 'daemon'] as const).filter((key) => index(key) > 0);
  const label = (key: Implementation['key']) => results.implementations[index(key)]?.label ?? key;
  const sequential = results.sequential?.results;
  for (const key of forms) {
    for (const [config, op, goal] of sequentialGoals[key]) {
      const result = sequential?.find((candidate) => candidate.config === config);
      if (!result) continue;
      const samples = op === 'ADD' ? result.add : result.del;
      found.push({ what: `config ${config} ${op}, ${label(key)} / reference p50`, measured: p50(samples[index(key)]) / p50(samples[0]), goal });
    }
  }
  const runs = results.parallel?.runs;
  if (runs) {
    const wall = (key: string) => median(runs.filter((run) => run.implementation.key === key).map((run) => run.wallMs));
    for (const key of forms) {
      const failures = runs.filter((run) => run.implementation.key === key).reduce((sum, run) => sum + run.failures.length, 0);
      found.push({
        what: `${results.parallel?.count} parallel ADDs, ${label(key)} / reference wall (median of runs)`,
        measured: wall(key) / wall('reference'),
        goal: parallelGoals[key],
        also: { ok: failures === 0, note: `${failures} failures` },
      });
    }
  }
  const levels = results.growth?.result.levels;
  if (levels && levels.length > 1) {
    const first = levels[0];
    const last = levels.at(-1);
    for (const key of forms) {
      found.push({ what: `${label(key)} ADD at ${last?.containers} / ADD at ${first?.containers} containers (p50)`, measured: p50(last?.add[index(key)]) / p50(first?.add[index(key)]), goal: 1.2 });
    }
  }
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

function targetsSection(results: Results): string {
  const rows = targets(results).map((target) => {
    const met = Number.isFinite(target.measured) && target.measured <= target.goal && (target.also?.ok ?? true);
    const measured = `${Number.isFinite(target.measured) ? target.measured.toFixed(2) : '–'}${target.also ? ` (${target.also.note})` : ''}`;
    return [target.what, measured, `≤ ${target.goal}`, Number.isFinite(target.measured) ? (met ? 'met' : 'missed') : 'n/a'];
  });
  return `## Targets\n\n${table(['target', 'measured', 'goal', ''], rows)}`;
}

function sequentialSection(results: Results): string {
  const sequential = results.sequential;
  if (!sequential) return '';
  const { implementations } = results;
  const count = implementations.length;
  const rows: string[][] = [];
  const perPlugin: string[][] = [];
  const notes: string[] = [];
  const inside: string[][] = [];
  for (const result of sequential.results) {
    for (const [op, samples] of [['ADD', result.add], ['DEL', result.del]] as const) {
      rows.push([configTitles[result.config], op, ...comparedCells(samples, count)]);
      for (const [index, implementation] of implementations.entries()) {
        if (!implementation.resident) continue;
        for (const role of roles) {
          const runtime = summarize(samples[index]?.byRole.get(role) ?? []).p50;
          const daemon = daemonP50(result.daemonCalls[index] ?? [], op, implementation.types[role]);
          if (!Number.isFinite(runtime)) continue;
          inside.push([result.config, op, implementation.types[role], ms(runtime), ms(daemon), ms(runtime - daemon)]);
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
    `## Sequential ADD and DEL (ms)\n\nN = ${sequential.n} per implementation and operation, in alternating rounds of ${sequential.roundSize} (at most ${sequential.roundSize} containers on the bridge); p50 / p90 / max.\n`,
    table(['config', 'op', ...compared(implementations)], rows),
    `\nPer plugin, p50 ms (the bridge's time includes its IPAM delegate):\n`,
    table(['config', 'op', 'plugin', ...compared(implementations)], perPlugin),
    ...(inside.length > 0
      ? [
          `\nWith the daemon, per plugin, p50 ms: the runtime's time, the daemon's own (its log line: request read to answer), and the rest (the runtime's spawn of nsenter and the client, the client's start-up, the round trip):\n`,
          table(['config', 'op', 'plugin', 'runtime', 'inside the daemon', 'rest'], inside),
        ]
      : []),
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
  ]);
  const wall = (implementation: Implementation) => median(parallel.runs.filter((run) => run.implementation === implementation).map((run) => run.wallMs));
  const [reference] = results.implementations;
  const medians = results.implementations.map((implementation) => {
    const value = wall(implementation);
    return `${implementation.label} ${(value / 1000).toFixed(2)} s${implementation === reference ? '' : ` (${ratio(value, reference ? wall(reference) : Number.NaN)})`}`;
  });
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
    `## ${parallel.count} ADDs of config c in parallel, fresh node\n\nRules: rule lines in the node's ruleset (Trestle: \`nft list ruleset\`; reference: \`iptables-save\`); duplicated: extra copies of an identical rule in the same chain.\n`,
    table(['implementation', 'wall s', 'failures', 'duplicate addresses', 'rules', 'duplicated rules'], rows),
    `\nMedian wall time (ratio to the reference): ${medians.join('; ')}.`,
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
  for (const level of growth.result.levels) {
    rows.push([String(level.containers), `ADD ${previous + 1}–${level.containers} (fill)`, ...comparedCells(level.fill, count)]);
    for (const [op, samples] of [['ADD', level.add], ['DEL', level.del]] as const) rows.push([String(level.containers), `${op} (window)`, ...comparedCells(samples, count)]);
    rows.push([String(level.containers), 'rules in ruleset', String(level.rules[0] ?? '–'), ...level.rules.slice(1).flatMap((rules) => [String(rules), ''])]);
    for (const [index, implementation] of implementations.entries()) {
      for (const [what, samples] of [['fill', level.fill[index]], ['ADD', level.add[index]], ['DEL', level.del[index]]] as const) {
        notes.push(...failureNote(`${level.containers} containers, ${what}, ${implementation.label}`, samples));
      }
    }
    previous = level.containers;
  }
  const cleanup = growth.result.cleanup.map((entry, index) => [
    implementations[index]?.label ?? '',
    String(entry.containers),
    (entry.deleteMs / 1000).toFixed(2),
    `${(entry.settleMs / 1000).toFixed(1)}${entry.settled ? '' : ' (still busy)'}`,
  ]);
  return [
    `## Growth: config c on one bridge (ms)\n\nAt each level, ${growth.rounds} windows of ${growth.window} ADDs then their ${growth.window} DELs per implementation, in alternating order; p50 / p90 / max.\n`,
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
  return [header, targetsSection(results), sequentialSection(results), parallelSection(results), growthSection(results), startupSection(results), footprintSection(results), memorySection(results)]
    .filter((section) => section !== '')
    .join('\n\n')
    .concat('\n');
}
