import type { Implementation } from '../impls.js';
import { log } from '../log.js';
import { BenchNode, type Container } from '../node.js';
import { workload } from '../workload.js';
import { vmRssKb } from './footprint.js';

// A resident daemon must not grow with the calls it serves: `pairs` ADD/DEL pairs of
// config a (bridge + host-local, no NAT: the most calls per second), one after the
// other on a few container namespaces in turn, reading the daemon's VmRSS every
// `every` pairs.
export interface MemorySample {
  pairs: number;
  rssKb: number;
  seconds: number;
}

export interface MemoryResult {
  implementation: Implementation;
  samples: MemorySample[];
  failures: string[];
}

export const containerCount = 10;

export async function runMemory(implementation: Implementation, pairs: number, every: number): Promise<MemoryResult> {
  const node = await BenchNode.create(`memory, ${implementation.label}`, { resident: true });
  try {
    const pid = node.daemonPid as number;
    const work = workload(implementation, node, 'a', 'mem');
    const containers = await node.addContainers(containerCount);
    const result: MemoryResult = { implementation, samples: [{ pairs: 0, rssKb: vmRssKb(pid), seconds: 0 }], failures: [] };
    const started = performance.now();
    for (let done = 0; done < pairs; ) {
      const container = containers[done % containerCount] as Container;
      const attachment = { containerId: work.nextId(), netns: container.path, ifname: 'eth0' };
      const added = await work.runtime.add(work.list, attachment);
      if (added.error) result.failures.push(`ADD: ${added.error}`);
      const deleted = await work.runtime.del(work.list, attachment, added.result);
      if (deleted.error) result.failures.push(`DEL: ${deleted.error}`);
      done += 1;
      if (done % every === 0 || done === pairs) {
        const sample = { pairs: done, rssKb: vmRssKb(pid), seconds: (performance.now() - started) / 1000 };
        if (Number.isNaN(sample.rssKb)) {
          result.failures.push(`the daemon (pid ${pid}) was gone after ${done} pairs: someone rebuilt? The section stopped there`);
          break;
        }
        result.samples.push(sample);
        log(`memory: ${done}/${pairs} pairs, daemon VmRSS ${(sample.rssKb / 1024).toFixed(1)} MB, ${((sample.seconds / done) * 1000).toFixed(1)} ms a pair`);
      }
    }
    return result;
  } finally {
    await node.destroy();
  }
}
