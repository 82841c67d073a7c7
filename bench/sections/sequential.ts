import { configNames, type ConfigName, type Implementation } from '../impls.js';
import { log } from '../log.js';
import { BenchNode, type DaemonCall } from '../node.js';
import { settleCpu } from '../settle.js';
import { addThenDelete, inTurn, OpSamples, warmUp, workload, type Workload } from '../workload.js';

// Sequential ADD and DEL latency per configuration. Each implementation gets its own
// fresh node per configuration; the implementations take turns in rounds of
// `roundSize` containers (the order flips every round) so that the machine's drift
// lands on both. At most `roundSize` containers exist at a time: accumulation is the
// growth section's subject.
export interface SequentialResult {
  config: ConfigName;
  add: OpSamples[];
  del: OpSamples[];
  // Per implementation, the calls as its daemon timed them (none when one-shot).
  daemonCalls: DaemonCall[][];
}

export async function runSequential(implementations: readonly Implementation[], n: number, roundSize: number): Promise<SequentialResult[]> {
  const results: SequentialResult[] = [];
  for (const config of configNames) {
    const nodes = await Promise.all(implementations.map((implementation) => BenchNode.create(`sequential ${config}, ${implementation.label}`, { resident: implementation.resident })));
    try {
      const works = implementations.map((implementation, index) => workload(implementation, nodes[index] as BenchNode, config, `seq-${config}`));
      const containers = await Promise.all(nodes.map((node) => node.addContainers(roundSize)));
      const result: SequentialResult = { config, add: implementations.map(() => new OpSamples()), del: implementations.map(() => new OpSamples()), daemonCalls: [] };
      log(`sequential ${config}: warm-up`);
      for (const [index, work] of works.entries()) await warmUp(work, nodes[index] as BenchNode, containers[index] ?? [], 20000);
      await settleCpu();
      const rounds = Math.ceil(n / roundSize);
      for (let round = 0; round < rounds; round += 1) {
        log(`sequential ${config}: round ${round + 1}/${rounds}`);
        const size = Math.min(roundSize, n - round * roundSize);
        for (const index of inTurn([...works.keys()], round)) {
          await addThenDelete(works[index] as Workload, (containers[index] ?? []).slice(0, size), 20000, result.add[index] as OpSamples, result.del[index] as OpSamples);
        }
      }
      for (const node of nodes) await node.destroy();
      result.daemonCalls = nodes.map((node) => node.daemonCalls);
      results.push(result);
    } finally {
      for (const node of nodes) await node.destroy();
    }
    await settleCpu();
  }
  return results;
}
