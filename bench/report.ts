import { configTitles, roles, type Implementation } from './impls.js';
import type { FootprintResult } from './sections/footprint.js';
import type { GrowthResult } from './sections/growth.js';
import type { ParallelRun } from './sections/parallel.js';
import type { SequentialResult } from './sections/sequential.js';
import type { StartupResult } from './sections/startup.js';
import { median, summarize } from './stats.js';
import type { OpSamples } from './workload.js';

// Markdown tables of a run. Column 0 is always the reference, column 1 Trestle; every
// ratio is Trestle / reference of the p50s.
export interface Results {
  implementations: readonly [Implementation, Implementation];
  sequential?: { n: number; roundSize: number; results: SequentialResult[] };
  parallel?: { count: number; runs: ParallelRun[] };
  growth?: { window: number; rounds: number; result: GrowthResult };
  startup?: StartupResult[];
  footprint?: FootprintResult[];
}

const ms = (value: number) => (Number.isFinite(value) ? value.toFixed(1) : '–');
const ratio = (trestle: number, reference: number) => (Number.isFinite(trestle / reference) ? (trestle / reference).toFixed(2) : '–');
const mb = (kb: number | undefined) => (kb === undefined || !Number.isFinite(kb) || kb === 0 ? '–' : (kb / 1024).toFixed(1));

function cell(samples: readonly number[]): string {
  if (samples.length === 0) return '–';
  const summary = summarize(samples);
  return `${ms(summary.p50)} / ${ms(summary.p90)} / ${ms(summary.max)}`;
}

function table(header: string[], rows: string[][]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n');
}

function p50(samples: OpSamples | undefined): number {
  return samples ? summarize(samples.total).p50 : Number.NaN;
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

function targets(results: Results): Target[] {
  const found: Target[] = [];
  const sequential = results.sequential?.results;
  for (const [config, add, del] of [['c', 0.5, 0.3], ['b', 0.8, 0.5]] as const) {
    const result = sequential?.find((candidate) => candidate.config === config);
    if (!result) continue;
    found.push({ what: `config ${config} ADD, Trestle / reference p50`, measured: p50(result.add[1]) / p50(result.add[0]), goal: add });
    found.push({ what: `config ${config} DEL, Trestle / reference p50`, measured: p50(result.del[1]) / p50(result.del[0]), goal: del });
  }
  const runs = results.parallel?.runs;
  if (runs) {
    const wall = (key: string) => median(runs.filter((run) => run.implementation.key === key).map((run) => run.wallMs));
    const failures = runs.filter((run) => run.implementation.key === 'trestle').reduce((sum, run) => sum + run.failures.length, 0);
    found.push({
      what: `${results.parallel?.count} parallel ADDs, Trestle / reference wall (median of runs)`,
      measured: wall('trestle') / wall('reference'),
      goal: 0.3,
      also: { ok: failures === 0, note: `${failures} Trestle failures` },
    });
  }
  const levels = results.growth?.result.levels;
  if (levels && levels.length > 1) {
    const first = levels[0];
    const last = levels.at(-1);
    found.push({ what: `Trestle ADD at ${last?.containers} / ADD at ${first?.containers} containers (p50)`, measured: p50(last?.add[1]) / p50(first?.add[1]), goal: 1.2 });
  }
  const trestle = results.footprint?.find((result) => result.implementation.key === 'trestle');
  if (trestle) {
    found.push({ what: 'Trestle peak RSS of one ADD, largest plugin (MB)', measured: Math.max(...Object.values(trestle.rssKb)) / 1024, goal: 60 });
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
  const [reference, trestle] = results.implementations;
  const rows: string[][] = [];
  const perPlugin: string[][] = [];
  const notes: string[] = [];
  for (const result of sequential.results) {
    for (const [op, samples] of [['ADD', result.add], ['DEL', result.del]] as const) {
      rows.push([configTitles[result.config], op, cell(samples[0]?.total ?? []), cell(samples[1]?.total ?? []), ratio(p50(samples[1]), p50(samples[0]))]);
      for (const role of roles) {
        const [ref, ours] = [samples[0]?.byRole.get(role), samples[1]?.byRole.get(role)];
        if (!ref && !ours) continue;
        const [refP50, oursP50] = [summarize(ref ?? []).p50, summarize(ours ?? []).p50];
        perPlugin.push([result.config, op, role, ms(refP50), ms(oursP50), ratio(oursP50, refP50)]);
      }
      notes.push(...failureNote(`config ${result.config} ${op} ${reference.label}`, samples[0]), ...failureNote(`config ${result.config} ${op} ${trestle.label}`, samples[1]));
    }
  }
  return [
    `## Sequential ADD and DEL (ms)\n\nN = ${sequential.n} per implementation and operation, in alternating rounds of ${sequential.roundSize} (at most ${sequential.roundSize} containers on the bridge); p50 / p90 / max.\n`,
    table(['config', 'op', `${reference.label}`, `${trestle.label}`, 'ratio'], rows),
    `\nPer plugin, p50 ms (the bridge's time includes its IPAM delegate):\n`,
    table(['config', 'op', 'plugin', reference.label, trestle.label, 'ratio'], perPlugin),
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
  const notes = parallel.runs.flatMap((run) => [
    ...(run.failures.length > 0 ? [`- ${run.implementation.label} failure: \`${run.failures[0]}\``] : []),
    ...run.ruleset.examples.map((example) => `- ${run.implementation.label} duplicated rule: \`${example}\``),
  ]);
  return [
    `## ${parallel.count} ADDs of config c in parallel, fresh node\n\nRules: rule lines in the node's ruleset (Trestle: \`nft list ruleset\`; reference: \`iptables-save\`); duplicated: extra copies of an identical rule in the same chain.\n`,
    table(['implementation', 'wall s', 'failures', 'duplicate addresses', 'rules', 'duplicated rules'], rows),
    notes.length > 0 ? `\n${notes.join('\n')}` : '',
  ].join('\n');
}

function growthSection(results: Results): string {
  const growth = results.growth;
  if (!growth) return '';
  const [reference, trestle] = results.implementations;
  const rows: string[][] = [];
  const notes: string[] = [];
  let previous = 0;
  for (const level of growth.result.levels) {
    const fillLabel = `ADD ${previous + 1}–${level.containers} (fill)`;
    rows.push([String(level.containers), fillLabel, cell(level.fill[0]?.total ?? []), cell(level.fill[1]?.total ?? []), ratio(p50(level.fill[1]), p50(level.fill[0]))]);
    for (const [op, samples] of [['ADD', level.add], ['DEL', level.del]] as const) {
      rows.push([String(level.containers), `${op} (window)`, cell(samples[0]?.total ?? []), cell(samples[1]?.total ?? []), ratio(p50(samples[1]), p50(samples[0]))]);
    }
    rows.push([String(level.containers), 'rules in ruleset', String(level.rules[0] ?? '–'), String(level.rules[1] ?? '–'), '']);
    for (const [index, implementation] of results.implementations.entries()) {
      for (const [what, samples] of [['fill', level.fill[index]], ['ADD', level.add[index]], ['DEL', level.del[index]]] as const) {
        notes.push(...failureNote(`${level.containers} containers, ${what}, ${implementation.label}`, samples));
      }
    }
    previous = level.containers;
  }
  const cleanup = growth.result.cleanup.map((entry, index) => [
    results.implementations[index]?.label ?? '',
    String(entry.containers),
    (entry.deleteMs / 1000).toFixed(2),
    `${(entry.settleMs / 1000).toFixed(1)}${entry.settled ? '' : ' (still busy)'}`,
  ]);
  return [
    `## Growth: config c on one bridge (ms)\n\nAt each level, ${growth.rounds} windows of ${growth.window} ADDs then their ${growth.window} DELs per implementation, in alternating order; p50 / p90 / max.\n`,
    table(['containers', 'op', reference.label, trestle.label, 'ratio'], rows),
    notes.length > 0 ? `\n${notes.join('\n')}` : '',
    `\nRemoving a node with its containers (\`ip netns del\`, then until the CPU is idle again), one after the other in this order:\n`,
    table(['implementation', 'namespaces', 'delete s', 'CPU busy after s'], cleanup),
  ].join('\n');
}

function startupSection(results: Results): string {
  const startup = results.startup;
  if (!startup) return '';
  const [reference] = results.implementations;
  // The reference first, then each Trestle form timed (script, and the single executable when built).
  const timed = [...new Set(startup.map((entry) => entry.implementation))].filter((implementation) => implementation !== reference);
  const rows = roles.map((role) => {
    const find = (implementation: unknown) => startup.find((entry) => entry.implementation === implementation && entry.role === role);
    const ref = find(reference);
    const ours = timed.map(find);
    return [`${ref?.type} / ${ours[0]?.type}`, cell(ref?.ms ?? []), ...ours.flatMap((entry) => [cell(entry?.ms ?? []), ratio(summarize(entry?.ms ?? []).p50, summarize(ref?.ms ?? []).p50)])];
  });
  const runs = startup[0]?.ms.length ?? 0;
  return [
    `## Start-up floor: VERSION (ms, ${runs} runs each)\n\nThe runtime's environment is passed on as it is (${process.env['NODE_EXTRA_CA_CERTS'] ? 'here it sets' : 'here it does not set'} NODE_EXTRA_CA_CERTS, which makes Node load a CA bundle at start-up: the script form's launcher unsets it before Node starts, a single executable cannot).\n`,
    table(['plugin', reference.label, ...timed.flatMap((implementation) => [implementation.label, 'ratio'])], rows),
  ].join('\n');
}

function footprintSection(results: Results): string {
  const footprint = results.footprint;
  if (!footprint) return '';
  const rows = footprint.flatMap((result) =>
    roles.map((role) => {
      const processes = (command: 'ADD' | 'DEL') => {
        const entry = result.processes[command].find((candidate) => candidate.role === role);
        return entry ? `${entry.count}${entry.programs ? ` (${entry.programs})` : ''}` : '–';
      };
      return [result.implementation.label, result.implementation.types[role], mb(result.rssKb[role]), processes('ADD'), processes('DEL')];
    }),
  );
  const notes = footprint.flatMap((result) => result.failures.map((failure) => `- ${result.implementation.label}: \`${failure}\``));
  return [
    '## One ADD / DEL of config c: peak RSS and processes started\n\nRSS: GNU time %M of the plugin (largest of it and its helpers; the IPAM plugin called alone). Processes: started by the plugin, from strace; the bridge\'s include its IPAM delegate and the delegate\'s own.\n',
    table(['implementation', 'plugin', 'peak RSS MB', 'processes on ADD', 'processes on DEL'], rows),
    notes.length > 0 ? `\n${notes.join('\n')}` : '',
  ].join('\n');
}

export function renderReport(results: Results, header: string): string {
  return [header, targetsSection(results), sequentialSection(results), parallelSection(results), growthSection(results), startupSection(results), footprintSection(results)]
    .filter((section) => section !== '')
    .join('\n\n')
    .concat('\n');
}
