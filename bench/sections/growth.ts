import { isTrestleType, portMapping, type Implementation } from '../impls.js';
import { log } from '../log.js';
import { BenchNode, type Container } from '../node.js';
import { rulesetCensus } from '../ruleset.js';
import { settleCpu } from '../settle.js';
import { addThenDelete, OpSamples, warmUp, workload } from '../workload.js';

// Config c as containers accumulate on one bridge. One implementation at a time, on a
// node of its own that is removed before the next starts: a node runs one plugin, and
// another implementation's thousand containers on the same kernel slowed every link
// change (the kernel's rtnl lock and work queues are shared by all namespaces). Its
// node is filled up to each level; there `rounds` windows of `window` ADDs followed by
// their DELs are timed. The fill ADDs are kept too: the latency between one level and
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

export async function runGrowth(implementations: readonly Implementation[], levels: readonly number[], window: number, rounds: number): Promise<GrowthResult> {
  const result: GrowthResult = {
    levels: levels.map((containers) => ({ containers, fill: [], add: [], del: [], rules: [] })),
    cleanup: [],
  };
  for (const [index, implementation] of implementations.entries()) {
    const node = await BenchNode.create(`growth, ${implementation.label}`, { resident: implementation.resident });
    try {
      const work = workload(implementation, node, 'c', 'grow');
      const windowContainers = await node.addContainers(window);
      log(`growth: ${implementation.label}: warm-up`);
      await warmUp(work, node, windowContainers, 60000);
      let filled = 0;
      for (const [levelIndex, level] of levels.entries()) {
        const measured = result.levels[levelIndex] as GrowthLevel;
        log(`growth: ${implementation.label}: filling to ${level} containers`);
        const fill = new OpSamples();
        const pool: Container[] = await node.addContainers(level - filled);
        for (let k = filled; k < level; k += 1) {
          const container = pool[k - filled] as Container;
          fill.record(implementation, await work.runtime.add(work.list, { containerId: work.nextId(), netns: container.path, ifname: 'eth0', capabilities: portMapping(20000 + k) }));
        }
        filled = level;
        await settleCpu();
        log(`growth: ${implementation.label}: timing ${rounds} × ${window} ADDs and DELs at ${level} containers`);
        const add = new OpSamples();
        const del = new OpSamples();
        for (let round = 0; round < rounds; round += 1) await addThenDelete(work, windowContainers, 60000, add, del);
        measured.fill[index] = fill;
        measured.add[index] = add;
        measured.del[index] = del;
        measured.rules[index] = (await rulesetCensus(node, isTrestleType(implementation.types.portmap))).rules;
      }
      // Removing the namespaces is part of a node's life too: the time `ip netns del`
      // takes, and how long the kernel keeps the CPU busy after.
      log(`growth: ${implementation.label}: removing the node and its containers`);
      const deleteMs = await node.destroy();
      const settled = await settleCpu({ timeoutMs: 180_000 });
      result.cleanup.push({ containers: filled + window, deleteMs, settleMs: settled.waitedMs, settled: settled.settled });
    } finally {
      await node.destroy();
    }
  }
  return result;
}
