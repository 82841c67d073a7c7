import { isTrestleType, portMapping, type Implementation } from '../impls.js';
import { log } from '../log.js';
import { BenchNode, type Container } from '../node.js';
import { rulesetCensus } from '../ruleset.js';
import { settleCpu } from '../settle.js';
import { addThenDelete, inTurn, OpSamples, workload, type Workload } from '../workload.js';

// Config c as containers accumulate on one bridge. Each implementation's node is
// filled (ADDs, taking turns in blocks of ten) up to each level; there `rounds`
// windows of `window` ADDs followed by their DELs are timed, the implementation order
// flipping every round. The fill ADDs are kept too: the latency between one level and
// the next.
export interface GrowthLevel {
  containers: number;
  // The ADDs that brought each implementation from the previous level to this one.
  fill: OpSamples[];
  add: OpSamples[];
  del: OpSamples[];
  // Rules in the node's ruleset at this level, per implementation.
  rules: number[];
}

export interface Cleanup {
  containers: number;
  deleteMs: number;
  settleMs: number;
  settled: boolean;
}

export interface GrowthResult {
  levels: GrowthLevel[];
  cleanup: Cleanup[];
}

const fillBlock = 10;

export async function runGrowth(implementations: readonly Implementation[], levels: readonly number[], window: number, rounds: number): Promise<GrowthResult> {
  const nodes = await Promise.all(implementations.map((implementation) => BenchNode.create(`growth, ${implementation.label}`, { resident: implementation.resident })));
  try {
    const works = implementations.map((implementation, index) => workload(implementation, nodes[index] as BenchNode, 'c', 'grow'));
    const windows = await Promise.all(nodes.map((node) => node.addContainers(window)));
    const result: GrowthResult = { levels: [], cleanup: [] };
    let filled = 0;
    for (const level of levels) {
      log(`growth: filling to ${level} containers`);
      const fill = works.map(() => new OpSamples());
      const pools: Container[][] = await Promise.all(nodes.map((node) => node.addContainers(level - filled)));
      for (let block = 0; filled + block * fillBlock < level; block += 1) {
        const start = filled + block * fillBlock;
        for (const index of inTurn([...works.keys()], block)) {
          const work = works[index] as Workload;
          for (let k = start; k < Math.min(start + fillBlock, level); k += 1) {
            const container = (pools[index] as Container[])[k - filled] as Container;
            const outcome = await work.runtime.add(work.list, { containerId: work.nextId(), netns: container.path, ifname: 'eth0', capabilities: portMapping(20000 + k) });
            (fill[index] as OpSamples).record(work.implementation, outcome);
          }
        }
      }
      filled = level;
      await settleCpu();
      log(`growth: timing ${rounds} × ${window} ADDs and DELs at ${level} containers`);
      const measured: GrowthLevel = { containers: level, fill, add: works.map(() => new OpSamples()), del: works.map(() => new OpSamples()), rules: [] };
      for (let round = 0; round < rounds; round += 1) {
        for (const index of inTurn([...works.keys()], round)) {
          await addThenDelete(works[index] as Workload, windows[index] as Container[], 60000, measured.add[index] as OpSamples, measured.del[index] as OpSamples);
        }
      }
      for (const [index, node] of nodes.entries()) {
        measured.rules.push((await rulesetCensus(node, isTrestleType((implementations[index] as Implementation).types.portmap))).rules);
      }
      result.levels.push(measured);
    }
    // Removing the namespaces is part of a node's life too: the time `ip netns del`
    // takes, and how long the kernel keeps the CPU busy after. One node at a time, in
    // implementation order, with a settled CPU in between.
    for (const node of nodes) {
      log('growth: removing a node and its containers');
      const deleteMs = await node.destroy();
      const settled = await settleCpu({ timeoutMs: 180_000 });
      result.cleanup.push({ containers: filled + window, deleteMs, settleMs: settled.waitedMs, settled: settled.settled });
    }
    return result;
  } finally {
    for (const node of nodes) await node.destroy();
  }
}
