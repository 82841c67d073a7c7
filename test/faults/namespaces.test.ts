// Namespaces that change under a call, against the real kernel, one-shot (the native
// client with no daemon on its socket) and through a daemon: a container's netns
// deleted in the middle of ADD, the bridge deleted in the middle of ADD, and a late
// step of ADD (a route) refused by the kernel after the links and addresses were made.
// Every call either succeeds or answers a CNI error (JSON on stdout, nonzero exit, not
// 999); DEL then succeeds; nothing is left (reservation, veth, nft element); and a
// daemon and every one of its threads are still in the node's namespace. Last, 1,000
// mixed calls through one daemon with those failures injected.
// TRESTLE_FAULT_SEED reproduces the delays and the mix; TRESTLE_NETNS_ITERATIONS and
// TRESTLE_NETNS_CALLS size the runs.
import { join } from 'node:path';
import { execa } from 'execa';
import t, { type Test } from 'tap';
import type { Attachment, ConfList } from '../../src/runtime/chain.js';
import type { Sandbox } from '../../src/sandbox/sandbox.js';
import { defaultChain, difference, gcInput, leftovers, nothing, pluginInput, Random, seedFromEnv, sleep, type Json } from '../helpers/faults.js';
import { bareSandbox, cniEnv, cniErrorCode, describeReply, runClient, served, startDaemon, status, type Reply } from '../helpers/daemon.js';
import { outsideNode, threadCount } from './lib/daemon-netns.js';

const seed = seedFromEnv('TRESTLE_FAULT_SEED', 20261201);
const iterations = seedFromEnv('TRESTLE_NETNS_ITERATIONS', 40);
const longRunCalls = seedFromEnv('TRESTLE_NETNS_CALLS', 1000);

type Mode = 'one-shot' | 'daemon';

// A route the kernel refuses (its gateway is on no subnet of the container) after a
// good one: one message of several answered with an error, late in ADD.
const badRoutes = [
  [{ dst: '10.250.0.0/16', gw: '198.51.100.1' }],
  [{ dst: '10.240.0.0/16' }, { dst: '10.250.0.0/16', gw: '198.51.100.1' }],
];

const tcpPort = (hostPort: number) => ({ portMappings: [{ hostPort, containerPort: 80, protocol: 'tcp' }] });

interface Container {
  name: string;
  path: string;
  id: string;
}

interface Failure {
  plugin: string;
  reply: Reply;
}

// One sandbox node, and the plugin calls made in it as a runtime makes them.
class Node {
  calls = 0;
  readonly list: ConfList;
  readonly bridgeName: string;

  constructor(
    readonly mode: Mode,
    readonly sandbox: Sandbox,
    readonly socket: string,
    readonly daemonPid: number | undefined,
  ) {
    this.list = defaultChain(sandbox);
    this.bridgeName = String((this.list.plugins[0] as Json)['bridge']);
  }

  static async create(t: Test, mode: Mode): Promise<Node> {
    const sandbox = await bareSandbox(t);
    if (mode === 'one-shot') return new Node(mode, sandbox, join(sandbox.dir, 'nobody-listens.sock'), undefined);
    const daemon = await startDaemon(t, sandbox);
    return new Node(mode, sandbox, sandbox.socketPath, daemon.pid);
  }

  badRouteList(variant: number): ConfList {
    return defaultChain(this.sandbox, { ipam: { routes: badRoutes[variant % badRoutes.length] } });
  }

  call(type: string, command: string, config: Json, attachment?: Attachment): Promise<Reply> {
    this.calls += 1;
    return runClient(this.sandbox, { type, env: cniEnv(command, this.socket, attachment), input: JSON.stringify(config) });
  }

  // ADD in order with prevResult chained; the first failure ends it, as in a runtime.
  async add(attachment: Attachment, list = this.list): Promise<{ result?: Json; failure?: Failure }> {
    let result: Json | undefined;
    for (const plugin of list.plugins) {
      const type = String(plugin['type']);
      const reply = await this.call(type, 'ADD', pluginInput(list, plugin, attachment, result), attachment);
      if (reply.exitCode !== 0 || reply.json === undefined) return { failure: { plugin: type, reply } };
      result = reply.json;
    }
    return result === undefined ? {} : { result };
  }

  async check(attachment: Attachment, result: Json): Promise<Failure | undefined> {
    for (const plugin of this.list.plugins) {
      const type = String(plugin['type']);
      const reply = await this.call(type, 'CHECK', pluginInput(this.list, plugin, attachment, result), attachment);
      if (reply.exitCode !== 0) return { plugin: type, reply };
    }
    return undefined;
  }

  // DEL in reverse order; prevResult when the runtime has one cached.
  async del(attachment: Attachment, result?: Json, list = this.list): Promise<Failure | undefined> {
    for (const plugin of [...list.plugins].reverse()) {
      const type = String(plugin['type']);
      const reply = await this.call(type, 'DEL', pluginInput(list, plugin, attachment, result), attachment);
      if (reply.exitCode !== 0) return { plugin: type, reply };
    }
    return undefined;
  }

  // GC of every plugin, as libcni runs them; the failures, described.
  async gc(valid: readonly Attachment[]): Promise<string[]> {
    const problems: string[] = [];
    for (const plugin of this.list.plugins) {
      const reply = await this.call(String(plugin['type']), 'GC', gcInput(this.list, plugin, valid));
      if (reply.exitCode !== 0) problems.push(`${plugin['type']} GC failed: ${describeReply(reply)}`);
    }
    return problems;
  }

  deleteNamespace(container: Container): Promise<unknown> {
    return execa('ip', ['netns', 'del', container.name], { reject: false });
  }

  deleteBridge(): Promise<unknown> {
    return this.sandbox.inNode('ip', ['link', 'del', this.bridgeName], { reject: false });
  }

  // What is left once the kernel has finished with the namespaces deleted meanwhile
  // (their veths go asynchronously); empty when nothing is.
  async leftovers(): Promise<string[]> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const problems = difference(nothing, await leftovers(this.sandbox, this.list));
      if (problems.length === 0 || Date.now() > deadline) return problems;
      await sleep(100);
    }
  }

  // Where the daemon and its threads are not in the node's namespace, and whether it
  // is still the daemon that answers.
  async daemonProblems(): Promise<string[]> {
    if (this.daemonPid === undefined) return [];
    // A thread opening a socket in a container's namespace is there for a few
    // microseconds while other workers' calls run: only a place that lasts counts.
    let problems = outsideNode(this.daemonPid, this.sandbox.nodePath);
    for (let look = 0; look < 5 && problems.length > 0; look++) {
      await sleep(10);
      problems = outsideNode(this.daemonPid, this.sandbox.nodePath);
    }
    const answer = await status(this.socket);
    if (!answer.running || answer.pid !== this.daemonPid) problems.push(`the daemon ${this.daemonPid} no longer answers: ${answer.running ? `pid ${answer.pid} does` : answer.reason}`);
    return problems;
  }
}

// How a failed call must look to a runtime: one CNI error on stdout, a nonzero exit,
// and not 999 (an internal error); undefined when it does.
function badFailure(failure: Failure): string | undefined {
  const code = cniErrorCode(failure.reply);
  if (failure.reply.exitCode !== 0 && code !== undefined && code !== 999) return undefined;
  return `${failure.plugin} did not answer a CNI error: ${describeReply(failure.reply)}`;
}

// The kind of an error, for the run's summary: plugin, code and message without the
// names and numbers that differ from one container to the next.
function errorKind(failure: Failure): string {
  const message = String(failure.reply.json?.['msg'] ?? describeReply(failure.reply)).slice(0, 160);
  return `${failure.plugin} ${cniErrorCode(failure.reply) ?? '?'}: ${message.replace(/[0-9a-f]{6,}|\d+(\.\d+)*/g, 'N')}`;
}

function describeFailure(failure: Failure): string {
  return `${failure.plugin} ${cniErrorCode(failure.reply) ?? '?'}: ${String(failure.reply.json?.['msg'] ?? describeReply(failure.reply)).slice(0, 200)}`;
}

// How long a bridge ADD takes here, warm: the window in which a fault lands mid-ADD.
async function bridgeAddWindow(node: Node): Promise<number> {
  let ms = 0;
  // The slower of two: one quick round on an idle machine would leave most of a
  // loaded ADD outside the window.
  for (let round = 0; round < 2; round++) {
    const container = await node.sandbox.addContainer();
    const attachment = node.sandbox.attachment(container);
    const bridge = node.list.plugins[0] as Json;
    const reply = await node.call('trestle-bridge', 'ADD', pluginInput(node.list, bridge, attachment), attachment);
    if (reply.exitCode !== 0) throw new Error(`a plain bridge ADD failed: ${describeReply(reply)}`);
    ms = Math.max(ms, reply.ms);
    const failure = await node.del(attachment, reply.json);
    if (failure) throw new Error(`a plain DEL failed: ${describeFailure(failure)}`);
    await node.deleteNamespace(container);
  }
  return ms;
}

async function daemonStillHome(t: Test, node: Node): Promise<void> {
  if (node.daemonPid === undefined) return;
  t.strictSame(await node.daemonProblems(), [], `the daemon and its ${threadCount(node.daemonPid)} threads are in the node's namespace, and it still answers`);
}

// A fault that lands `delay` ms after an ADD of the chain started.
async function addWithFault(node: Node, attachment: Attachment, delay: number, fault: () => Promise<unknown>): Promise<{ result?: Json; failure?: Failure }> {
  const adding = node.add(attachment);
  await sleep(delay);
  await fault();
  return adding;
}

// ADDs, each with `fault` done at a seeded instant within a measured ADD; then DEL, and
// whatever `after` checks. Only CNI errors may come back, and nothing may be left.
interface FaultRun {
  seed: number;
  firstPort: number;
  what: string;
  fault: (node: Node, container: { name: string; path: string; id: string }) => Promise<unknown>;
  // More problems to report for one container once its DEL ran.
  after?: (node: Node, container: { name: string; path: string; id: string }, attachment: Attachment) => Promise<string[]>;
}

async function runFaults(t: Test, mode: 'one-shot' | 'daemon', run: FaultRun): Promise<void> {
  const node = await Node.create(t, mode);
  const random = new Random(run.seed);
  const window = Math.max(30, (await bridgeAddWindow(node)) * 1.2);
  t.comment(`seed ${run.seed}; delays from 0 to ${window.toFixed(0)} ms after the ADD started`);
  let succeeded = 0;
  for (let index = 0; index < iterations; index++) {
    const container = await node.sandbox.addContainer();
    const attachment = node.sandbox.attachment(container, { capabilities: tcpPort(run.firstPort + index) });
    const delay = random.next() * window;
    const added = await addWithFault(node, attachment, delay, () => run.fault(node, container));
    const problems: string[] = [];
    if (added.failure) {
      const bad = badFailure(added.failure);
      if (bad) problems.push(`ADD: ${bad}`);
    } else succeeded += 1;
    const failure = await node.del(attachment, added.result);
    if (failure) problems.push(`DEL failed: ${describeFailure(failure)}`);
    problems.push(...((await run.after?.(node, container, attachment)) ?? []));
    t.strictSame(problems, [], `${run.what} ${delay.toFixed(1)} ms into the ADD: ${added.failure ? `ADD answered ${describeFailure(added.failure)}` : 'ADD succeeded'}; DEL succeeded`);
  }
  t.comment(`${succeeded} ADDs of ${iterations} succeeded, the others answered an error`);
  t.strictSame(await node.leftovers(), [], 'no reservation, veth or nft element is left');
  await daemonStillHome(t, node);
}

for (const mode of ['one-shot', 'daemon'] as const) {
  t.test(`${mode}: a container's netns deleted in the middle of ADD`, (t) =>
    runFaults(t, mode, { seed, firstPort: 20000, what: 'netns deleted', fault: (node, container) => node.deleteNamespace(container) }));

  t.test(`${mode}: the bridge deleted in the middle of ADD`, (t) =>
    runFaults(t, mode, {
      seed: seed + 1,
      firstPort: 21000,
      what: 'bridge deleted',
      fault: (node) => node.deleteBridge(),
      // The next ADD makes the bridge again.
      after: async (node, container, attachment) => {
        const problems: string[] = [];
        const again = await node.add(attachment);
        if (again.failure) problems.push(`the next ADD failed: ${describeFailure(again.failure)}`);
        const cleared = await node.del(attachment, again.result);
        if (cleared) problems.push(`the DEL after it failed: ${describeFailure(cleared)}`);
        await node.deleteNamespace(container);
        return problems;
      },
    }));

  t.test(`${mode}: a route refused by the kernel after the links and addresses were made`, async (t) => {
    const node = await Node.create(t, mode);
    for (const [variant, routes] of badRoutes.entries()) {
      const container = await node.sandbox.addContainer();
      const attachment = node.sandbox.attachment(container, { capabilities: tcpPort(22000 + variant) });
      const added = await node.add(attachment, node.badRouteList(variant));
      const what = `routes ${JSON.stringify(routes)}`;
      t.ok(added.failure, `${what}: ADD fails`);
      if (!added.failure) continue;
      t.equal(added.failure.plugin, 'trestle-bridge', `${what}: at the bridge`);
      t.equal(badFailure(added.failure), undefined, `${what}: with a CNI error (${describeFailure(added.failure)})`);
      t.match(String(added.failure.reply.json?.['msg'] ?? ''), /route/i, `${what}: whose message names the route step`);
      t.strictSame(await node.leftovers(), [], `${what}: nothing is left by the failed ADD`);
      const failure = await node.del(attachment, undefined, node.badRouteList(variant));
      t.notOk(failure, `${what}: DEL succeeds${failure ? `: ${describeFailure(failure)}` : ''}`);
      const good = await node.add(attachment);
      t.notOk(good.failure, `${what}: then an ADD with good routes succeeds${good.failure ? `: ${describeFailure(good.failure)}` : ''}`);
      const cleared = await node.del(attachment, good.result);
      t.notOk(cleared, `${what}: and its DEL${cleared ? `: ${describeFailure(cleared)}` : ''}`);
    }
    t.strictSame(await node.leftovers(), [], 'nothing is left');
    await daemonStillHome(t, node);
  });
}

// ---------------------------------------------------------------- the long run

type Operation = 'ADD' | 'ADD, bad route' | 'ADD, no such netns' | 'ADD, netns deleted' | 'ADD, bridge deleted' | 'CHECK' | 'DEL' | 'DEL, netns deleted' | 'CHECK, bridge deleted';

interface Slot {
  container: Container;
  attachment: Attachment;
  port: number;
  // The chain's result while the container is added.
  result?: Json;
  // The bridge deletions seen when it was added: a later one leaves its veth on no
  // bridge, and CHECK may then answer an error.
  addedEpoch: number;
}

interface LongRun {
  node: Node;
  window: number;
  epoch: number;
  problems: string[];
  tally: Map<Operation, { runs: number; failed: number; errors: Set<string> }>;
  // CHECKs of containers no bridge deletion touched: these must succeed.
  heldChecks: number;
  nextCheck: number;
  missing: number;
}

function choose(random: Random, slot: Slot): Operation {
  const roll = random.next();
  if (slot.result === undefined) {
    if (roll < 0.55) return 'ADD';
    if (roll < 0.65) return 'ADD, bad route';
    if (roll < 0.75) return 'ADD, no such netns';
    if (roll < 0.9) return 'ADD, netns deleted';
    return 'ADD, bridge deleted';
  }
  // A deleted bridge leaves every container added before it on no bridge, and their
  // CHECKs may fail from then on: rare enough that most CHECKs are held to succeed.
  if (roll < 0.45) return 'CHECK';
  if (roll < 0.87) return 'DEL';
  if (roll < 0.96) return 'DEL, netns deleted';
  return 'CHECK, bridge deleted';
}

async function freshContainer(run: LongRun, slot: Slot): Promise<void> {
  await run.node.deleteNamespace(slot.container);
  slot.container = await run.node.sandbox.addContainer();
  slot.attachment = run.node.sandbox.attachment(slot.container, { capabilities: tcpPort(slot.port) });
  delete slot.result;
}

// One operation on a slot; returns the error a call answered (allowed or not), its
// message stripped of names, or undefined.
async function operate(run: LongRun, random: Random, slot: Slot, operation: Operation): Promise<string | undefined> {
  const { node } = run;
  const problem = (text: string) => run.problems.push(`${operation} on ${slot.attachment.containerId}: ${text}`);
  const cleanFailure = (failure: Failure | undefined) => {
    const bad = failure && badFailure(failure);
    if (bad) problem(bad);
  };
  const mustDelete = async (attachment: Attachment, result?: Json, list?: ConfList) => {
    const failure = await node.del(attachment, result, list);
    if (failure) problem(`DEL failed: ${describeFailure(failure)}`);
  };
  switch (operation) {
    case 'ADD':
    case 'ADD, netns deleted':
    case 'ADD, bridge deleted': {
      const epoch = run.epoch;
      const fault = operation === 'ADD' ? undefined : operation === 'ADD, netns deleted' ? () => node.deleteNamespace(slot.container) : () => ((run.epoch += 1), node.deleteBridge());
      const added = fault ? await addWithFault(node, slot.attachment, random.next() * run.window, fault) : await node.add(slot.attachment);
      if (added.failure) {
        cleanFailure(added.failure);
        // A plain ADD may fail only when another worker deleted the bridge under it.
        if (operation === 'ADD' && run.epoch === epoch) problem(`a plain ADD failed: ${describeFailure(added.failure)}`);
        await mustDelete(slot.attachment);
      } else if (operation === 'ADD, netns deleted') {
        await mustDelete(slot.attachment, added.result);
      } else {
        slot.result = added.result as Json;
        slot.addedEpoch = operation === 'ADD' ? epoch : -1;
      }
      if (operation === 'ADD, netns deleted') await freshContainer(run, slot);
      return added.failure && errorKind(added.failure);
    }
    case 'ADD, bad route': {
      const list = node.badRouteList(random.int(badRoutes.length));
      const added = await node.add(slot.attachment, list);
      if (!added.failure) problem('ADD succeeded');
      else if (!/route/i.test(String(added.failure.reply.json?.['msg']))) problem(`the error does not name the route: ${describeFailure(added.failure)}`);
      cleanFailure(added.failure);
      await mustDelete(slot.attachment, undefined, list);
      if (added.result) await mustDelete(slot.attachment, added.result);
      return added.failure && errorKind(added.failure);
    }
    case 'ADD, no such netns': {
      run.missing += 1;
      const attachment = { ...slot.attachment, netns: `/run/netns/trn-missing-${node.sandbox.id}-${run.missing}` };
      const added = await node.add(attachment);
      if (!added.failure) problem('ADD succeeded');
      cleanFailure(added.failure);
      await mustDelete(attachment, added.result);
      return added.failure && errorKind(added.failure);
    }
    case 'CHECK':
    case 'CHECK, bridge deleted': {
      if (operation === 'CHECK, bridge deleted') {
        run.epoch += 1;
        await node.deleteBridge();
      }
      const failure = await node.check(slot.attachment, slot.result as Json);
      cleanFailure(failure);
      if (slot.addedEpoch === run.epoch) {
        run.heldChecks += 1;
        if (failure) problem(`CHECK failed: ${describeFailure(failure)}`);
      }
      // As a kubelet does with a broken sandbox: tear it down, to add it again later.
      if (failure) {
        await mustDelete(slot.attachment, slot.result);
        delete slot.result;
      }
      return failure && errorKind(failure);
    }
    case 'DEL':
      await mustDelete(slot.attachment, random.chance(0.5) ? slot.result : undefined);
      delete slot.result;
      return undefined;
    case 'DEL, netns deleted':
      await node.deleteNamespace(slot.container);
      await mustDelete(slot.attachment, random.chance(0.5) ? slot.result : undefined);
      await freshContainer(run, slot);
      return undefined;
  }
}

async function worker(run: LongRun, random: Random, slots: Slot[]): Promise<void> {
  while (run.node.calls < longRunCalls) {
    const slot = random.pick(slots);
    const operation = choose(random, slot);
    const error = await operate(run, random, slot, operation);
    const counts = run.tally.get(operation) ?? { runs: 0, failed: 0, errors: new Set<string>() };
    counts.runs += 1;
    if (error !== undefined) {
      counts.failed += 1;
      counts.errors.add(error);
    }
    run.tally.set(operation, counts);
    if (run.node.calls >= run.nextCheck) {
      run.nextCheck += 100;
      for (const problem of await run.node.daemonProblems()) run.problems.push(`after ${run.node.calls} calls: ${problem}`);
    }
  }
}

t.test(`daemon: ${longRunCalls} mixed calls with injected failures (TRESTLE_FAULT_SEED=${seed})`, async (t) => {
  const node = await Node.create(t, 'daemon');
  const started = Date.now();
  const servedBefore = await served(node.socket);
  const window = Math.max(30, (await bridgeAddWindow(node)) * 1.2);
  const run: LongRun = { node, window, epoch: 0, problems: [], tally: new Map(), heldChecks: 0, nextCheck: 100, missing: 0 };
  const workers = 4;
  const slotsPerWorker = 5;
  const shares: Slot[][] = [];
  for (let worker = 0; worker < workers; worker++) {
    const slots: Slot[] = [];
    for (let index = 0; index < slotsPerWorker; index++) {
      const container = await node.sandbox.addContainer();
      const port = 23000 + worker * slotsPerWorker + index;
      slots.push({ container, attachment: node.sandbox.attachment(container, { capabilities: tcpPort(port) }), port, addedEpoch: 0 });
    }
    shares.push(slots);
  }
  const outcomes = await Promise.allSettled(shares.map((slots, index) => worker(run, new Random(seed + 100 + index), slots)));
  for (const outcome of outcomes) if (outcome.status === 'rejected') run.problems.push(`a worker stopped: ${(outcome.reason as Error).stack ?? String(outcome.reason)}`);
  const mixed = node.calls;
  const mixedSeconds = (Date.now() - started) / 1000;

  t.strictSame(run.problems.slice(0, 30), [], `every call succeeded or answered a CNI error as expected, every DEL succeeded (${run.problems.length} problems)`);
  t.strictSame(await node.daemonProblems(), [], `after ${mixed} calls the daemon and its ${threadCount(node.daemonPid as number)} threads are in the node's namespace, and it still answers`);

  for (const slots of shares) {
    for (const slot of slots) {
      const failure = slot.result ? await node.del(slot.attachment, slot.result) : undefined;
      t.notOk(failure, `DEL of ${slot.attachment.containerId} at the end${failure ? `: ${describeFailure(failure)}` : ''}`);
      await node.deleteNamespace(slot.container);
    }
  }
  t.strictSame(await node.gc([]), [], 'GC with no valid attachment succeeds');
  t.strictSame(await node.leftovers(), [], 'after DEL of everything and GC nothing is left');
  t.equal((await served(node.socket)) - servedBefore, node.calls, 'the daemon served every call');
  await daemonStillHome(t, node);
  const lines = [...run.tally.entries()].map(([operation, counts]) => `${operation}: ${counts.runs}, ${counts.failed} answered an error${counts.errors.size > 0 ? `: ${[...counts.errors].slice(0, 4).join(' | ')}` : ''}`);
  t.comment(`${mixed} mixed calls in ${mixedSeconds.toFixed(1)} s, ${node.calls} with the cleanup; ${run.heldChecks} CHECKs held to succeed (no bridge deletion since their ADD); operations:\n${lines.join('\n')}`);
});
