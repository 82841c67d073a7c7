import type { ConfList } from '../src/runtime/chain.js';
import { conflist, portMapping, roleOf, runtimeFor, type ConfigName, type Implementation, type Role } from './impls.js';
import type { BenchNode, Container } from './node.js';
import type { Attachment, ChainOutcome, Json, Runtime } from './runtime.js';

// Latencies of one operation (ADD or DEL) for one implementation: the whole chain,
// and each plugin of it (the bridge's time includes its IPAM delegate), on both clocks
// (runtime.ts: the runtime's, and exec to exit in the node).
export class OpSamples {
  readonly total: number[] = [];
  readonly byRole = new Map<Role, number[]>();
  readonly execTotal: number[] = [];
  readonly execByRole = new Map<Role, number[]>();
  readonly failures: string[] = [];

  record(implementation: Implementation, outcome: ChainOutcome): void {
    if (outcome.error !== undefined) {
      this.failures.push(outcome.error);
      return;
    }
    this.total.push(outcome.ms);
    this.execTotal.push(outcome.execMs);
    for (const call of outcome.calls) {
      const role = roleOf(implementation, call.type);
      if (role === undefined) continue;
      for (const [byRole, ms] of [[this.byRole, call.ms], [this.execByRole, call.execMs]] as const) {
        const samples = byRole.get(role) ?? [];
        samples.push(ms);
        byRole.set(role, samples);
      }
    }
  }
}

// The order for a round: flipped every round so that neither implementation always
// runs first (the machine drifts, and the first one after a pause pays cold caches).
export function inTurn<T>(items: readonly T[], round: number): T[] {
  return round % 2 === 0 ? [...items] : [...items].reverse();
}

export interface Workload {
  implementation: Implementation;
  runtime: Runtime;
  list: ConfList;
  // Container IDs must never repeat on a node: the IPAM store is keyed by them.
  nextId: () => string;
}

export function workload(implementation: Implementation, node: BenchNode, config: ConfigName, idPrefix: string): Workload {
  let count = 0;
  return { implementation, runtime: runtimeFor(implementation, node), list: conflist(implementation, config, node), nextId: () => `${idPrefix}-${(count += 1)}` };
}

// ADDs each container in turn, then DELs them in turn, as a runtime starting and then
// stopping a batch of pods would; the containers' namespaces are empty again after,
// ready for the next round. hostPorts are firstHostPort, firstHostPort + 1, ...
export async function addThenDelete(work: Workload, containers: readonly Container[], firstHostPort: number, add: OpSamples, del: OpSamples): Promise<void> {
  const attached: Array<{ attachment: Attachment; result: Json | undefined; timed: boolean }> = [];
  for (const [index, container] of containers.entries()) {
    const attachment = { containerId: work.nextId(), netns: container.path, ifname: 'eth0', capabilities: portMapping(firstHostPort + index) };
    const outcome = await work.runtime.add(work.list, attachment);
    add.record(work.implementation, outcome);
    attached.push({ attachment, result: outcome.result, timed: outcome.error === undefined });
  }
  for (const { attachment, result, timed } of attached) {
    const outcome = await work.runtime.del(work.list, attachment, result);
    // A DEL after a failed ADD is cleanup, not the operation being measured.
    if (timed) del.record(work.implementation, outcome);
  }
}

// Untimed ADD/DEL pairs before a node's timed calls, the same for every
// implementation: a resident daemon is measured as it runs on a node, warm, rather
// than in its first calls after start, when V8 still interprets its code (its first
// hundred calls took about a third more CPU). The parallel section keeps a fresh one:
// its subject is a node's first burst.
export const warmUpPairs = 30;

export async function warmUp(work: Workload, node: BenchNode, containers: readonly Container[], firstHostPort: number): Promise<void> {
  for (let done = 0; done < warmUpPairs; done += containers.length) {
    await addThenDelete(work, containers.slice(0, warmUpPairs - done), firstHostPort, new OpSamples(), new OpSamples());
  }
  node.startTiming();
}
