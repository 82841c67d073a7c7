// Seeded SIGKILLs across the default chain (bridge + trestle-host-local with ipMasq,
// portmap with one tcp and one udp host port): at each point a plugin is killed at a
// chosen moment (a lock held, a record or state file not yet in place, an nftables
// transaction just before or just after the kernel committed it, an rtnetlink change
// done but its answer unread, or a random instant), then the runtime does what it
// does: DEL (with or without prevResult, with or without the container's namespace),
// then GC with the attachments still valid. After each point nothing of the victim
// may be left, no process of it may be left running, and the next ADD of a fresh
// container must work.
// TRESTLE_FAULT_SEED reproduces a run (the plan, not the scheduler's timing);
// TRESTLE_FAULT_POINTS and TRESTLE_FAULT_WORKERS size it.
import t, { type Test } from 'tap';
import type { Attachment, ConfList } from '../../src/runtime/chain.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { formatPrefix, parsePrefix } from '../../src/util/ip.js';
import {
  ageTempFiles,
  chainAdd,
  chainDel,
  chainGc,
  defaultChain,
  deleteNamespace,
  describeOutcome,
  difference,
  gcInput,
  hostLocalInput,
  hostPorts,
  leftovers,
  nothing,
  pluginInput,
  Random,
  resultAddress,
  resultHostVeth,
  runAndKill,
  runPlugin,
  seedFromEnv,
  typicalDuration,
  type Command,
  type Invocation,
  type Json,
  type Leftovers,
  type Trigger,
} from '../helpers/faults.js';

const seed = seedFromEnv('TRESTLE_FAULT_SEED', 20261130);
const pointCount = seedFromEnv('TRESTLE_FAULT_POINTS', 120);
const workerCount = seedFromEnv('TRESTLE_FAULT_WORKERS', 6);

type Plugin = 'trestle-bridge' | 'trestle-portmap' | 'trestle-host-local';
type Stage = Exclude<Command, 'CHECK' | 'STATUS'>;
type TriggerKind = Trigger['kind'];

// Where each plugin and command can be caught (host-local's code runs inside the
// bridge in the default chain; on its own it is what the bridge would delegate to).
const triggers: Record<Plugin, Record<Stage, TriggerKind[]>> = {
  'trestle-bridge': {
    ADD: ['ipam-lock', 'reservation-temp', 'firewall-lock', 'state-temp', 'nft-sending', 'nft-committed', 'netlink', 'timer'],
    DEL: ['ipam-lock', 'firewall-lock', 'nft-sending', 'nft-committed', 'netlink', 'timer'],
    GC: ['ipam-lock', 'firewall-lock', 'nft-sending', 'nft-committed', 'netlink', 'timer'],
  },
  'trestle-portmap': {
    ADD: ['firewall-lock', 'state-temp', 'nft-sending', 'nft-committed', 'timer'],
    DEL: ['firewall-lock', 'nft-sending', 'nft-committed', 'timer'],
    // No nftables transaction: the bridge's GC, which the runtime runs first, removed
    // the victim's port mappings with its masquerade.
    GC: ['firewall-lock', 'timer'],
  },
  'trestle-host-local': {
    ADD: ['ipam-lock', 'reservation-temp', 'timer'],
    DEL: ['ipam-lock', 'timer'],
    GC: ['ipam-lock', 'timer'],
  },
};

type DelMode = 'prevResult' | 'no prevResult' | 'netns gone' | 'netns gone, prevResult';

interface Point {
  index: number;
  plugin: Plugin;
  stage: Stage;
  trigger: TriggerKind;
  // For a timer: the fraction of the call's usual duration.
  at: number;
  // For netlink: which rtnetlink change (an ADD on an existing bridge makes seven: the
  // veth, its settings on both sides, the address and the route; a DEL or GC one, the
  // veth's removal). A point past the call's last change does not land, and
  // the table says so.
  nth: number;
  del: DelMode;
}

function plan(random: Random): Point[] {
  const plugins: Plugin[] = ['trestle-bridge', 'trestle-bridge', 'trestle-portmap', 'trestle-portmap', 'trestle-host-local'];
  const stages: Stage[] = ['ADD', 'ADD', 'DEL', 'DEL', 'GC'];
  const points: Point[] = [];
  for (let index = 0; index < pointCount; index++) {
    const plugin = random.pick(plugins);
    const stage = random.pick(stages);
    points.push({
      index,
      plugin,
      stage,
      trigger: random.pick(triggers[plugin][stage]),
      at: 0.05 + random.next() * 0.65,
      nth: stage === 'ADD' ? 1 + random.int(7) : 1,
      del: random.pick<DelMode>(['prevResult', 'no prevResult', 'netns gone', 'netns gone, prevResult']),
    });
  }
  return points;
}

function where(point: Point): string {
  if (point.trigger === 'timer') return `${Math.round(point.at * 100)}% of its run`;
  if (point.trigger === 'netlink') return `rtnetlink change ${point.nth}`;
  return point.trigger;
}

function describePoint(point: Point): string {
  return `point ${point.index}: ${point.plugin} ${point.stage} killed at ${where(point)}, DEL ${point.del}`;
}

function triggerFor(point: Point, typicalMs: number): Trigger {
  switch (point.trigger) {
    case 'timer':
      return { kind: 'timer', ms: Math.max(1, point.at * typicalMs) };
    case 'netlink':
      return { kind: 'netlink', nth: point.nth };
    default:
      return { kind: point.trigger };
  }
}

interface Counts {
  planned: number;
  killed: number;
  // For netlink: the requests the kills landed in.
  caught: Map<string, number>;
}

interface Tally {
  points: number;
  kills: number;
  byTrigger: Map<string, Counts>;
}

function count(tally: Tally, key: string, caught: string | undefined): void {
  const counts = tally.byTrigger.get(key) ?? { planned: 0, killed: 0, caught: new Map() };
  counts.planned += 1;
  if (caught !== undefined) {
    counts.killed += 1;
    counts.caught.set(caught, (counts.caught.get(caught) ?? 0) + 1);
  }
  tally.byTrigger.set(key, counts);
}

function countsLine(key: string, counts: Counts): string {
  const requests = [...counts.caught.entries()].filter(([caught]) => caught.startsWith('RTM_') || caught.startsWith('rtnetlink'));
  return `${key}: ${counts.killed}/${counts.planned}${requests.length > 0 ? ` (${requests.map(([caught, n]) => `${caught} ${n}`).join(', ')})` : ''}`;
}

const victimPorts = 30001;
const livePorts = 30000;

// The subnet of the live container's first address, as nft prints it.
function resultSubnet(result: Json): string {
  const prefix = parsePrefix(((result['ips'] ?? []) as Array<{ address: string }>)[0]?.address ?? '');
  return prefix === undefined ? '' : formatPrefix(prefix);
}

// The baseline every point must come back to: the live container's things only (its
// network's subnet pairs, which it shares, among them).
function attributed(state: Leftovers, live: Json): string[] {
  const address = resultAddress(live);
  const subnet = resultSubnet(live);
  const problems: string[] = [];
  if (state.reservations.join() !== address) problems.push(`reservations ${state.reservations.join(', ')} (the live container has ${address})`);
  if (state.veths.join() !== resultHostVeth(live)) problems.push(`veths ${state.veths.join(', ')} (the live container has ${resultHostVeth(live)})`);
  const foreign = state.elements.filter((element) => !new RegExp(`(^|[^0-9.])${address.replace(/\./g, '\\.')}([^0-9]|$)`).test(element) && !(subnet !== '' && element.includes(subnet)));
  if (foreign.length > 0) problems.push(`elements not of the live container: ${foreign.join(', ')}`);
  if (state.tempFiles.length > 0) problems.push(`temporary files: ${state.tempFiles.join(', ')}`);
  return problems;
}

function invocation(list: ConfList, plugin: Plugin, stage: Stage, victim: Attachment, live: Attachment, prevResult: Json | undefined): Invocation {
  if (plugin === 'trestle-host-local') {
    const config = stage === 'GC' ? hostLocalInput(list, { 'cni.dev/valid-attachments': [{ containerID: live.containerId, ifname: live.ifname }] }) : hostLocalInput(list);
    return stage === 'GC' ? { type: plugin, command: stage, config } : { type: plugin, command: stage, config, attachment: victim };
  }
  const entry = list.plugins[plugin === 'trestle-bridge' ? 0 : 1] as Json;
  if (stage === 'GC') return { type: plugin, command: 'GC', config: gcInput(list, entry, [live]) };
  return { type: plugin, command: stage, config: pluginInput(list, entry, victim, prevResult), attachment: victim };
}

async function runWorker(t: Test, points: readonly Point[], tally: Tally): Promise<void> {
  const sandbox = await Sandbox.create(t);
  const list = defaultChain(sandbox);
  const liveContainer = await sandbox.addContainer();
  const live = sandbox.attachment(liveContainer, { capabilities: { portMappings: hostPorts(livePorts) } });
  const liveResult = await chainAdd(sandbox, list, live);
  let baseline = await leftovers(sandbox, list);
  t.strictSame(attributed(baseline, liveResult), [], `worker ${sandbox.id}: the live container alone`);
  const bridgeEntry = list.plugins[0] as Json;
  const portmapEntry = list.plugins[1] as Json;
  // The ADD of a fresh container that follows a point: the next point's own setup
  // ADD when it has one, otherwise a separate ADD and DEL.
  let pendingFreshCheck: string | undefined;

  for (const [position, point] of points.entries()) {
    const problems: string[] = [];
    const container = await sandbox.addContainer();
    const victim = sandbox.attachment(container, { capabilities: { portMappings: hostPorts(victimPorts) } });
    let cached: Json | undefined;
    if (point.stage !== 'ADD') {
      try {
        cached = await chainAdd(sandbox, list, victim);
      } catch (error) {
        t.fail(`${pendingFreshCheck ?? describePoint(point)}: the ADD of a fresh container failed: ${(error as Error).message}`);
        pendingFreshCheck = undefined;
        await deleteNamespace(container);
        continue;
      }
    }
    pendingFreshCheck = undefined;

    // The killed call, after whatever the runtime ran before it in the chain.
    let prevResult = cached;
    if (point.stage === 'ADD' && point.plugin === 'trestle-portmap') {
      const bridge = await runPlugin(sandbox, { type: 'trestle-bridge', command: 'ADD', config: pluginInput(list, bridgeEntry, victim), attachment: victim });
      if (bridge.exitCode !== 0) problems.push(`bridge ADD before the kill failed: ${describeOutcome(bridge)}`);
      prevResult = bridge.json;
    }
    if (point.stage === 'DEL' && point.plugin === 'trestle-bridge') {
      const portmap = await runPlugin(sandbox, { type: 'trestle-portmap', command: 'DEL', config: pluginInput(list, portmapEntry, victim, cached), attachment: victim });
      if (portmap.exitCode !== 0) problems.push(`portmap DEL before the kill failed: ${describeOutcome(portmap)}`);
    }
    if (point.stage === 'GC' && point.plugin === 'trestle-portmap') {
      const bridge = await runPlugin(sandbox, { type: 'trestle-bridge', command: 'GC', config: gcInput(list, bridgeEntry, [live]) });
      if (bridge.exitCode !== 0) problems.push(`bridge GC before the kill failed: ${describeOutcome(bridge)}`);
    }
    const call = invocation(list, point.plugin, point.stage, victim, live, point.stage === 'ADD' ? prevResult : cached);
    const trigger = triggerFor(point, typicalDuration(point.plugin, call.command));
    const report = await runAndKill(sandbox, list, call, trigger);
    count(tally, `${point.plugin} ${point.stage} ${point.trigger}`, report.caught);
    tally.points += 1;
    if (report.killed) tally.kills += 1;
    if (report.outcome && report.outcome.exitCode !== 0 && report.outcome.json?.['code'] === 999) problems.push(`the unkilled call answered 999: ${describeOutcome(report.outcome)}`);
    if (report.orphans.length > 0) problems.push(`the killed plugin left processes running: ${report.orphans.join(' ')}`);

    // What the runtime does next.
    if (point.del.startsWith('netns gone')) await deleteNamespace(container);
    const withResult = point.del.endsWith('prevResult') && point.stage !== 'ADD' ? cached : undefined;
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        await chainDel(sandbox, list, victim, withResult);
        break;
      } catch (error) {
        problems.push(`DEL attempt ${attempt} failed: ${(error as Error).message}`);
      }
    }
    ageTempFiles(sandbox);
    try {
      await chainGc(sandbox, list, [live]);
    } catch (error) {
      problems.push(`GC failed: ${(error as Error).message}`);
    }
    const after = await leftovers(sandbox, list);
    problems.push(...difference(baseline, after));
    await deleteNamespace(container);
    t.strictSame(problems, [], `${describePoint(point)}${report.outcome ? ` (finished before the trigger: ${describeOutcome(report.outcome).slice(0, 300)})` : ` (in ${report.caught})`}`);
    // A failed point leaves its leftovers in the baseline, so later points are judged
    // on what they add.
    if (problems.length > 0) baseline = after;

    const next = points[position + 1];
    if (next === undefined || next.stage === 'ADD') {
      const freshContainer = await sandbox.addContainer();
      const fresh = sandbox.attachment(freshContainer, { capabilities: { portMappings: hostPorts(victimPorts) } });
      try {
        const result = await chainAdd(sandbox, list, fresh);
        await chainDel(sandbox, list, fresh, result);
      } catch (error) {
        t.fail(`${describePoint(point)}: the ADD and DEL of a fresh container failed: ${(error as Error).message}`);
      }
      await deleteNamespace(freshContainer);
    } else {
      pendingFreshCheck = describePoint(point);
    }
  }

  const problems: string[] = [];
  await chainDel(sandbox, list, live, liveResult).catch((error: Error) => problems.push(`DEL of the live container failed: ${error.message}`));
  await chainGc(sandbox, list, []).catch((error: Error) => problems.push(`GC failed: ${error.message}`));
  problems.push(...difference(nothing, await leftovers(sandbox, list)));
  t.strictSame(problems, [], `worker ${sandbox.id}: nothing left once the live container is gone`);
}

t.test(`SIGKILL at ${pointCount} seeded points (TRESTLE_FAULT_SEED=${seed})`, async (t) => {
  t.comment(`seed ${seed}: rerun with TRESTLE_FAULT_SEED=${seed} TRESTLE_FAULT_POINTS=${pointCount} TRESTLE_FAULT_WORKERS=${workerCount}`);
  const points = plan(new Random(seed));
  const tally: Tally = { points: 0, kills: 0, byTrigger: new Map() };
  const started = Date.now();
  const shares = Array.from({ length: workerCount }, (_, worker) => points.filter((point) => point.index % workerCount === worker));
  // One worker's unexpected error must not cut the others' points short.
  const outcomes = await Promise.allSettled(shares.map((share) => runWorker(t, share, tally)));
  for (const outcome of outcomes) if (outcome.status === 'rejected') t.fail(`a worker stopped: ${(outcome.reason as Error).stack ?? String(outcome.reason)}`);
  const entries = [...tally.byTrigger.entries()].sort(([a], [b]) => a.localeCompare(b));
  const byKind = new Map<string, Counts>();
  for (const [key, counts] of entries) {
    const kind = key.split(' ')[2] as string;
    const total = byKind.get(kind) ?? { planned: 0, killed: 0, caught: new Map() };
    total.planned += counts.planned;
    total.killed += counts.killed;
    for (const [caught, n] of counts.caught) total.caught.set(caught, (total.caught.get(caught) ?? 0) + n);
    byKind.set(kind, total);
  }
  const lines = entries.map(([key, counts]) => countsLine(key, counts));
  const totals = [...byKind.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([kind, counts]) => countsLine(kind, counts));
  t.comment(
    `killed at ${tally.kills} of ${tally.points} points in ${((Date.now() - started) / 1000).toFixed(1)} s; by trigger (killed/planned):\n${totals.join('\n')}\nby plugin, command and trigger:\n${lines.join('\n')}`,
  );
  t.ok(tally.kills >= Math.min(100, pointCount), `a SIGKILL landed at ${tally.kills} points (at least ${Math.min(100, pointCount)})`);
});
