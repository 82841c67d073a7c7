import { isTrestleType, portMapping, type Implementation } from '../impls.js';
import { log } from '../log.js';
import { BenchNode, cpuBetween, type DaemonCall, type DaemonCpu } from '../node.js';
import { rulesetCensus, type RulesetCensus } from '../ruleset.js';
import { settleCpu } from '../settle.js';
import { inTurn, workload } from '../workload.js';

// `count` ADDs of config c started at once on a fresh node, as a runtime starting a
// batch of pods does: the first ADDs race to create the shared bridge, tables and
// chains, which is where the reference sometimes fails or writes rules twice.
export interface ParallelRun {
  implementation: Implementation;
  wallMs: number;
  failures: string[];
  duplicateAddresses: number;
  ruleset: RulesetCensus;
  // The calls as the daemon timed them (none when one-shot).
  daemonCalls: DaemonCall[];
  // The daemon's CPU over the burst (none when one-shot).
  daemonCpu: DaemonCpu | undefined;
}

function addresses(result: Record<string, unknown> | undefined): string[] {
  const ips = (result?.['ips'] ?? []) as Array<{ address?: string }>;
  return ips.map((ip) => (ip.address ?? '').split('/')[0] as string);
}

async function runOnce(implementation: Implementation, count: number): Promise<ParallelRun> {
  const node = await BenchNode.create(`parallel, ${implementation.label}`, { resident: implementation.resident });
  try {
    const { runtime, list, nextId } = workload(implementation, node, 'c', 'par');
    const containers = await node.addContainers(count);
    await settleCpu();
    const cpuBefore = node.daemonCpu();
    const started = performance.now();
    const outcomes = await Promise.all(
      containers.map((container, index) => runtime.add(list, { containerId: nextId(), netns: container.path, ifname: 'eth0', capabilities: portMapping(20000 + index) })),
    );
    const wallMs = performance.now() - started;
    const daemonCpu = cpuBetween(cpuBefore, node.daemonCpu());
    const assigned = outcomes.flatMap((outcome) => addresses(outcome.result));
    const ruleset = await rulesetCensus(node, isTrestleType(implementation.types.portmap));
    await node.destroy();
    return {
      implementation,
      wallMs,
      failures: outcomes.flatMap((outcome) => (outcome.error === undefined ? [] : [outcome.error])),
      duplicateAddresses: assigned.length - new Set(assigned).size,
      ruleset,
      daemonCalls: node.daemonCalls,
      daemonCpu,
    };
  } finally {
    await node.destroy();
    await settleCpu();
  }
}

export async function runParallel(implementations: readonly Implementation[], count: number, runs: number): Promise<ParallelRun[]> {
  const results: ParallelRun[] = [];
  for (let run = 0; run < runs; run += 1) {
    for (const implementation of inTurn(implementations, run)) {
      log(`parallel: run ${run + 1}/${runs}, ${implementation.label}`);
      results.push(await runOnce(implementation, count));
    }
  }
  return results;
}
