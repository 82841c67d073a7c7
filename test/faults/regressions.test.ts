// One regression test per fault of issue 9 (items 1-9), each reproducing the
// operator's scenario on the real kernel in its own sandbox. Each failed on eef5d23;
// items 2, 6 and 9 caught an nft child then, and now catch the plugin in the sendmsg
// of its own nftables transaction (issue 11: no process per call; see item 6).
import { existsSync, mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { Attachment, ConfList } from '../../src/runtime/chain.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { addressesOf, link } from '../helpers/bridge.js';
import {
  ageTempFiles,
  alive,
  ChainFailure,
  chainAdd,
  chainCheck,
  chainDel,
  chainGc,
  defaultChain,
  describeOutcome,
  difference,
  errorCode,
  firewallDir,
  hostPorts,
  leftovers,
  networkDir,
  nftElements,
  nothing,
  pluginInput,
  reservationFiles,
  resultAddress,
  runAndKill,
  runPlugin,
  sleep,
  startPlugin,
  stateFiles,
  tempFiles,
  nftTransactionHeld,
  syscallDelay,
  type Json,
  type Outcome,
} from '../helpers/faults.js';

// The scenarios are independent sandboxes; most of their time is spent waiting.
t.jobs = 4;

const second = 1000;

function only(list: ConfList, type: string): ConfList {
  return { ...list, plugins: list.plugins.filter((plugin) => plugin['type'] === type) };
}

function withPorts(sandbox: Sandbox, container: { path: string; id: string }, port: number): Attachment {
  return sandbox.attachment(container, { capabilities: { portMappings: hostPorts(port) } });
}

// A chain step that must succeed; its failure is the assertion's message.
async function succeeds(t: Test, what: string, step: () => Promise<unknown>): Promise<boolean> {
  try {
    await step();
    t.pass(what);
    return true;
  } catch (error) {
    t.fail(`${what}: ${(error as Error).message}`);
    return false;
  }
}

function notInternal(t: Test, outcome: Outcome, what: string): void {
  t.not(errorCode(outcome), 999, `${what} never answers 999 (${describeOutcome(outcome)})`);
}

async function timed(step: () => Promise<unknown>): Promise<{ ms: number; error?: Error }> {
  const started = Date.now();
  try {
    await step();
    return { ms: Date.now() - started };
  } catch (error) {
    return { ms: Date.now() - started, error: error as Error };
  }
}

async function nothingLeft(t: Test, sandbox: Sandbox, list: ConfList, what: string): Promise<void> {
  t.strictSame(difference(nothing, await leftovers(sandbox, list)), [], what);
}

function bridgeOf(list: ConfList): Json {
  return list.plugins[0] as Json;
}

function portmapOf(list: ConfList): Json {
  return list.plugins[1] as Json;
}

t.test('item 1: a killed holder of the IPAM lock costs the next ADD, DEL and GC at most ~2 s, never an error', async (t) => {
  const sandbox = await Sandbox.create(t);
  const list = defaultChain(sandbox);
  const lock = join(networkDir(sandbox, list), 'trestle.lock');
  // What a holder killed just now leaves: the lock directory, with a fresh mtime.
  const orphanLock = () => {
    mkdirSync(networkDir(sandbox, list), { recursive: true });
    mkdirSync(lock);
  };
  const attachment = withPorts(sandbox, await sandbox.addContainer(), 8080);
  let result: Json = {};
  orphanLock();
  const add = await timed(async () => {
    result = await chainAdd(sandbox, list, attachment);
  });
  t.equal(add.error?.message, undefined, 'ADD succeeds despite the orphaned lock');
  t.ok(add.ms <= 3.5 * second, `ADD waited ${add.ms} ms (at most ~3 s)`);
  orphanLock();
  const gc = await timed(() => chainGc(sandbox, list, [attachment]));
  t.equal(gc.error?.message, undefined, 'GC succeeds despite the orphaned lock');
  t.ok(gc.ms <= 3.5 * second, `GC waited ${gc.ms} ms (at most ~3 s)`);
  orphanLock();
  const del = await timed(() => chainDel(sandbox, list, attachment, result));
  t.equal(del.error?.message, undefined, 'DEL succeeds despite the orphaned lock');
  t.ok(del.ms <= 3.5 * second, `DEL waited ${del.ms} ms (at most ~3 s)`);
  t.strictSame(reservationFiles(sandbox, list), [], 'and released the address');

  // The real thing: a bridge ADD killed while it holds the lock.
  const victim = withPorts(sandbox, await sandbox.addContainer(), 8080);
  const report = await runAndKill(sandbox, list, { type: 'trestle-bridge', command: 'ADD', config: pluginInput(list, bridgeOf(list), victim), attachment: victim }, { kind: 'ipam-lock' });
  t.ok(report.killed, 'the bridge ADD was killed holding the lock');
  t.strictSame(report.orphans, [], 'and left no process running');
  const retry = await timed(() => chainDel(sandbox, list, victim));
  t.equal(retry.error?.message, undefined, "the runtime's DEL succeeds");
  t.ok(retry.ms <= 3.5 * second, `DEL waited ${retry.ms} ms (at most ~3 s)`);
  await chainGc(sandbox, list, []);
  await nothingLeft(t, sandbox, list, 'nothing is left');
});

t.test('item 1: a lock that a live process keeps answers 11 (try again later), not 999', async (t) => {
  const sandbox = await Sandbox.create(t);
  const list = defaultChain(sandbox);
  const lock = join(networkDir(sandbox, list), 'trestle.lock');
  mkdirSync(lock, { recursive: true });
  // A live holder refreshes the lock's mtime, as proper-lockfile does every second.
  const refresher = setInterval(() => {
    const now = new Date();
    utimesSync(lock, now, now);
  }, 250);
  t.teardown(() => clearInterval(refresher));
  const attachment = sandbox.attachment(await sandbox.addContainer());
  const started = Date.now();
  const outcome = await runPlugin(sandbox, { type: 'trestle-bridge', command: 'ADD', config: pluginInput(list, bridgeOf(list), attachment), attachment });
  const waited = Date.now() - started;
  clearInterval(refresher);
  t.not(outcome.exitCode, 0, 'ADD fails while the lock is held');
  t.equal(errorCode(outcome), 11, `with code 11, try again later (${describeOutcome(outcome)})`);
  t.ok(waited <= 15 * second, `after ${waited} ms`);
  rmSync(lock, { recursive: true, force: true });
  t.strictSame(reservationFiles(sandbox, list), [], 'and reserves nothing');
  t.strictSame(await leftovers(sandbox, list).then((state) => state.veths), [], 'and creates no veth');
});

t.test('item 2: a DEL killed after the release cannot take the masquerade of the next owner of the address', async (t) => {
  const sandbox = await Sandbox.create(t);
  // One address in the range: whoever comes next gets the same one.
  const list = only(defaultChain(sandbox, { ipam: { ranges: [[{ subnet: '10.77.0.0/16', rangeStart: '10.77.0.2', rangeEnd: '10.77.0.2', gateway: '10.77.0.1' }]] } }), 'trestle-bridge');
  const first = sandbox.attachment(await sandbox.addContainer());
  const firstResult = await chainAdd(sandbox, list, first);
  // The bridge DEL is killed right after the kernel committed its nftables transaction
  // (the masquerade removed), before it read the answer: what an nft child that outlived
  // its plugin did when the plugins still ran nft.
  const report = await runAndKill(sandbox, list, { type: 'trestle-bridge', command: 'DEL', config: pluginInput(list, bridgeOf(list), first, firstResult), attachment: first }, { kind: 'nft-committed' });
  t.ok(report.killed, 'the bridge DEL was killed right after its nftables transaction');
  t.strictSame(report.orphans, [], 'and left no process running');
  t.notOk((await nftElements(sandbox)).includes(`masq4: ${resultAddress(firstResult)}`), 'the transaction had committed: the first masquerade is gone');

  const second_ = sandbox.attachment(await sandbox.addContainer());
  let secondResult: Json | undefined;
  try {
    secondResult = await chainAdd(sandbox, list, second_);
  } catch (error) {
    // The first container's DEL did not finish: its address may still be held.
    t.equal(error instanceof ChainFailure ? errorCode(error.outcome) : undefined, 100, `the next ADD finds the only address still held (${(error as Error).message})`);
    await succeeds(t, "the runtime's DEL of the first container", () => chainDel(sandbox, list, first, firstResult));
    secondResult = await chainAdd(sandbox, list, second_);
  }
  t.equal(resultAddress(secondResult), resultAddress(firstResult), 'the second container has the address the first had');
  await succeeds(t, 'the first container is deleted again', () => chainDel(sandbox, list, first, firstResult));
  await succeeds(t, 'and again without prevResult', () => chainDel(sandbox, list, first));
  await succeeds(t, 'GC with the second container valid', () => chainGc(sandbox, list, [second_]));
  await succeeds(t, "CHECK of the second container passes: its masquerade is intact", () => chainCheck(sandbox, list, second_, secondResult ?? {}));
  t.ok((await nftElements(sandbox)).includes(`masq4: ${resultAddress(secondResult)}`), 'its masquerade element is in the ruleset');
  await chainDel(sandbox, list, second_, secondResult);
  await chainGc(sandbox, list, []);
  await nothingLeft(t, sandbox, list, 'nothing is left once both are gone');
});

t.test('item 3: GC releases an empty reservation file', async (t) => {
  const sandbox = await Sandbox.create(t);
  const list = defaultChain(sandbox, { ipam: { ranges: [[{ subnet: '10.77.0.0/16', rangeStart: '10.77.0.2', rangeEnd: '10.77.0.3', gateway: '10.77.0.1' }]] } });
  const holder = withPorts(sandbox, await sandbox.addContainer(), 8080);
  const held = await chainAdd(sandbox, list, holder);
  t.equal(resultAddress(held), '10.77.0.2', 'the holder has the first address');
  // What the reference plugin, or an older Trestle, leaves when killed between the
  // exclusive create and the write; old enough that no ADD is still writing it.
  const empty = join(networkDir(sandbox, list), '10.77.0.3');
  writeFileSync(empty, '');
  const old = new Date(Date.now() - 3600 * second);
  utimesSync(empty, old, old);
  const other = withPorts(sandbox, await sandbox.addContainer(), 8081);
  const delOther = await runPlugin(sandbox, { type: 'trestle-bridge', command: 'DEL', config: pluginInput(list, bridgeOf(list), other), attachment: other });
  t.equal(delOther.exitCode, 0, `a DEL succeeds beside it (${describeOutcome(delOther)})`);
  await succeeds(t, 'GC with the holder valid', () => chainGc(sandbox, list, [holder]));
  t.notOk(existsSync(empty), 'GC removed the empty reservation');
  t.strictSame(reservationFiles(sandbox, list), ['10.77.0.2'], "and kept the holder's");
  let next: Json | undefined;
  await succeeds(t, 'the address is free again', async () => {
    next = await chainAdd(sandbox, list, other);
  });
  t.equal(resultAddress(next), '10.77.0.3', 'the next ADD gets it');
  await chainDel(sandbox, list, other, next);
  await chainDel(sandbox, list, holder, held);
  await nothingLeft(t, sandbox, list, 'nothing is left');
});

// Every state file of the network that names this container.
function ownStateFiles(sandbox: Sandbox, list: ConfList): string[] {
  const dir = join(firewallDir(sandbox), list.name);
  return readdirSync(dir)
    .filter((name) => /^(masquerade|portmap)\..*\.json$/.test(name))
    .map((name) => join(dir, name));
}

for (const [name, content] of [
  ['{}', '{}'],
  ['truncated JSON', '{"network":"net","containerId":"c","elements":[{"set":"masq4",'],
  ['an empty file', ''],
  ['fields of the wrong type', '{"network":7,"containerId":[],"ifname":null,"elements":"x","masquerade":{},"portMappings":null}'],
] as const) {
  t.test(`item 4: a firewall state file holding ${name} is garbage: no 999, DEL and GC succeed and remove all`, async (t) => {
    const sandbox = await Sandbox.create(t);
    const list = defaultChain(sandbox);
    const first = withPorts(sandbox, await sandbox.addContainer(), 8080);
    const firstResult = await chainAdd(sandbox, list, first);
    const files = ownStateFiles(sandbox, list);
    t.ok(files.length >= 2, `the masquerade and port mapping state files exist (${files.map((file) => file.split('/').pop()).join(', ')})`);
    for (const file of files) writeFileSync(file, content);

    // Another container asks for the same host port: still a conflict, 102.
    const second_ = withPorts(sandbox, await sandbox.addContainer(), 8080);
    const bridge = await runPlugin(sandbox, { type: 'trestle-bridge', command: 'ADD', config: pluginInput(list, bridgeOf(list), second_), attachment: second_ });
    t.equal(bridge.exitCode, 0, describeOutcome(bridge));
    const conflict = await runPlugin(sandbox, { type: 'trestle-portmap', command: 'ADD', config: pluginInput(list, portmapOf(list), second_, bridge.json), attachment: second_ });
    t.equal(errorCode(conflict), 102, `the host port conflict is 102 (${describeOutcome(conflict)})`);
    await succeeds(t, "the runtime's DEL of the refused container", () => chainDel(sandbox, list, second_));

    await succeeds(t, 'GC with the first container valid', () => chainGc(sandbox, list, [first]));
    await succeeds(t, 'DEL of the container whose state is corrupt', () => chainDel(sandbox, list, first, firstResult));
    t.strictSame(reservationFiles(sandbox, list), [], 'its address is released');
    t.strictSame((await leftovers(sandbox, list)).veths, [], 'its veth is gone');
    await succeeds(t, 'GC', () => chainGc(sandbox, list, []));
    await nothingLeft(t, sandbox, list, 'nothing is left: no element, state or temporary file');
  });
}

t.test('item 5: temporary files of a killed write are removed by GC once old, kept while young', async (t) => {
  const sandbox = await Sandbox.create(t);
  const list = defaultChain(sandbox);
  // portmap killed while its state file is written but not yet renamed.
  const first = withPorts(sandbox, await sandbox.addContainer(), 8080);
  const bridge = await runPlugin(sandbox, { type: 'trestle-bridge', command: 'ADD', config: pluginInput(list, bridgeOf(list), first), attachment: first });
  const portmap = await runAndKill(sandbox, list, { type: 'trestle-portmap', command: 'ADD', config: pluginInput(list, portmapOf(list), first, bridge.json), attachment: first }, { kind: 'state-temp' });
  t.ok(portmap.killed, 'portmap ADD was killed during the rename of its state file');
  // The bridge killed between writing a reservation and linking it into place.
  const secondContainer = await sandbox.addContainer();
  const second_ = withPorts(sandbox, secondContainer, 8081);
  const reservation = await runAndKill(sandbox, list, { type: 'trestle-bridge', command: 'ADD', config: pluginInput(list, bridgeOf(list), second_), attachment: second_ }, { kind: 'reservation-temp' });
  t.ok(reservation.killed, 'bridge ADD was killed between the write and the link of its reservation');
  t.ok(tempFiles(sandbox).length >= 2, `temporary files are left (${tempFiles(sandbox).join(', ')})`);
  t.strictSame([...portmap.orphans, ...reservation.orphans], [], 'the killed plugins left no process running');
  await succeeds(t, "the runtime's DEL of the first", () => chainDel(sandbox, list, first));
  await succeeds(t, "the runtime's DEL of the second", () => chainDel(sandbox, list, second_));

  // A write in flight right now: GC must not take its file.
  const young = [join(firewallDir(sandbox), list.name, 'portmap.inflight.json.tmp'), join(networkDir(sandbox, list), '.trestle-10.77.0.250.4242.tmp')];
  for (const file of young) writeFileSync(file, '10.77.0.250');
  await succeeds(t, 'GC', () => chainGc(sandbox, list, []));
  for (const file of young) t.ok(existsSync(file), `a temporary file written just now survives GC: ${file.split('/').pop()}`);
  ageTempFiles(sandbox);
  await succeeds(t, 'GC after the grace period', () => chainGc(sandbox, list, []));
  t.strictSame(tempFiles(sandbox), [], 'GC removed every old temporary file');
  await nothingLeft(t, sandbox, list, 'nothing is left');
});

// Item 6 was an nft child that committed a portmap ADD's DNAT after the runtime's DEL,
// its plugin killed while it waited. That cannot happen any more: the plugins run no
// nft, and a transaction is committed inside the plugin's own sendmsg or not at all, so
// a killed plugin commits nothing afterwards. The nearest risk left: the transaction
// committed, the plugin killed before it recorded that it did.
t.test('item 6: a portmap ADD killed right after its nftables transaction committed: DEL and GC leave nothing, the next container gets the host port', async (t) => {
  const sandbox = await Sandbox.create(t);
  const list = defaultChain(sandbox);
  const first = withPorts(sandbox, await sandbox.addContainer(), 8080);
  const bridge = await runPlugin(sandbox, { type: 'trestle-bridge', command: 'ADD', config: pluginInput(list, bridgeOf(list), first), attachment: first });
  const address = resultAddress(bridge.json);
  const report = await runAndKill(sandbox, list, { type: 'trestle-portmap', command: 'ADD', config: pluginInput(list, portmapOf(list), first, bridge.json), attachment: first }, { kind: 'nft-committed' });
  t.ok(report.killed, 'portmap ADD was killed right after its nftables transaction');
  t.strictSame(report.orphans, [], 'and left no process running');
  t.ok(
    (await nftElements(sandbox)).some((element) => element.startsWith('hp_any4:') && element.includes(address)),
    'the transaction had committed: its DNAT is in the ruleset (the scenario happened)',
  );
  await succeeds(t, "the runtime's DEL", () => chainDel(sandbox, list, first));
  t.strictSame((await nftElements(sandbox)).filter((element) => element.includes(address)), [], 'the DEL removed every element of the container');
  await succeeds(t, 'GC', () => chainGc(sandbox, list, []));
  t.strictSame((await nftElements(sandbox)).filter((element) => element.includes(address)), [], 'and none came back by GC');
  const next = withPorts(sandbox, await sandbox.addContainer(), 8080);
  let nextResult: Json | undefined;
  await succeeds(t, 'the next container gets the host port', async () => {
    nextResult = await chainAdd(sandbox, list, next);
  });
  await chainDel(sandbox, list, next, nextResult);
  await chainGc(sandbox, list, []);
  await nothingLeft(t, sandbox, list, 'nothing is left');
});

t.test('item 7: a failed ADD removes the bridge it created, and the gateway address it added', async (t) => {
  const sandbox = await Sandbox.create(t);
  const bridgeName = 'trf7';
  // eth9 already exists in the container: the veth pair cannot be made.
  const blocked = async () => {
    const container = await sandbox.addContainer();
    await sandbox.exec(container.name, 'ip', ['link', 'add', 'eth9', 'type', 'veth', 'peer', 'name', 'squatter']);
    return sandbox.attachment(container, { ifname: 'eth9' });
  };
  const first = only(defaultChain(sandbox, { bridge: { bridge: bridgeName }, ipam: { ranges: [[{ subnet: '10.91.0.0/24', gateway: '10.91.0.1' }]] } }), 'trestle-bridge');
  const failing = await blocked();
  const outcome = await runPlugin(sandbox, { type: 'trestle-bridge', command: 'ADD', config: pluginInput(first, bridgeOf(first), failing), attachment: failing });
  t.not(outcome.exitCode, 0, `ADD fails (${describeOutcome(outcome)})`);
  notInternal(t, outcome, 'the failed ADD');
  t.equal(await link(sandbox, sandbox.node, bridgeName), undefined, 'the bridge it created is gone');
  await nothingLeft(t, sandbox, first, 'no veth, reservation, element or state is left');

  // The bridge exists, without ports, with the first network's gateway.
  const attachment = sandbox.attachment(await sandbox.addContainer());
  const result = await chainAdd(sandbox, first, attachment);
  await chainDel(sandbox, first, attachment, result);
  const before = addressesOf(await link(sandbox, sandbox.node, bridgeName), 4);
  t.strictSame(before, ['10.91.0.1/24'], 'the bridge keeps its gateway after a DEL');
  const other: ConfList = { ...only(defaultChain(sandbox, { bridge: { bridge: bridgeName }, ipam: { ranges: [[{ subnet: '10.92.0.0/24', gateway: '10.92.0.1' }]] } }), 'trestle-bridge'), name: `${first.name}-b` };
  const failingAgain = await blocked();
  const again = await runPlugin(sandbox, { type: 'trestle-bridge', command: 'ADD', config: pluginInput(other, bridgeOf(other), failingAgain), attachment: failingAgain });
  t.not(again.exitCode, 0, `ADD on the existing bridge fails (${describeOutcome(again)})`);
  notInternal(t, again, 'the failed ADD');
  t.ok(await link(sandbox, sandbox.node, bridgeName), 'the bridge it did not create stays');
  t.strictSame(addressesOf(await link(sandbox, sandbox.node, bridgeName), 4), before, 'without the gateway address the failed ADD added');
  t.strictSame(reservationFiles(sandbox, other), [], 'and without a reservation');
});

t.test('item 8: an unreadable resolvConf fails ADD before any address is reserved', async (t) => {
  const sandbox = await Sandbox.create(t);
  const unreadable = [join(sandbox.dir, 'no-such-resolv.conf'), sandbox.dir];
  for (const resolvConf of unreadable) {
    const list = defaultChain(sandbox, { ipam: { resolvConf } });
    for (let retry = 1; retry <= 3; retry++) {
      const attachment = withPorts(sandbox, await sandbox.addContainer(), 8080);
      const bridge = await runPlugin(sandbox, { type: 'trestle-bridge', command: 'ADD', config: pluginInput(list, bridgeOf(list), attachment), attachment });
      t.not(bridge.exitCode, 0, `bridge ADD with resolvConf ${resolvConf} fails (try ${retry})`);
      notInternal(t, bridge, 'bridge ADD');
      const hostLocal = await runPlugin(sandbox, { type: 'trestle-host-local', command: 'ADD', config: pluginInput(list, bridgeOf(list), attachment), attachment });
      t.not(hostLocal.exitCode, 0, `host-local ADD with resolvConf ${resolvConf} fails (try ${retry})`);
      notInternal(t, hostLocal, 'host-local ADD');
      t.strictSame(reservationFiles(sandbox, list), [], 'no address is reserved');
    }
    await nothingLeft(t, sandbox, list, 'nothing is left');
  }
});

t.test('item 9: ADD and DEL of one container at once leave no DNAT to a released address', async (t) => {
  const sandbox = await Sandbox.create(t);
  const list = defaultChain(sandbox);

  // portmap ADD is inside its nftables transaction when the runtime's DEL starts: strace
  // holds it at the entry of the sendmsg that carries the batch for 0.8 s, then lets it
  // commit.
  const first = withPorts(sandbox, await sandbox.addContainer(), 8080);
  const bridge = await runPlugin(sandbox, { type: 'trestle-bridge', command: 'ADD', config: pluginInput(list, bridgeOf(list), first), attachment: first });
  const adding = startPlugin(sandbox, { type: 'trestle-portmap', command: 'ADD', config: pluginInput(list, portmapOf(list), first, bridge.json), attachment: first }, { strace: syscallDelay('sendmsg', 'delay_enter', 800_000) });
  const addingPid = await adding.pid;
  const inTransaction = nftTransactionHeld(addingPid, 800_000);
  let held = false;
  for (let waited = 0; !held && alive(addingPid) && waited < 10 * second; waited += 2) {
    held = inTransaction();
    if (!held) await sleep(2);
  }
  t.ok(held, 'portmap ADD is held in the sendmsg of its nftables transaction');
  const deleting = chainDel(sandbox, list, first).then(
    () => undefined,
    (error: Error) => error,
  );
  const added = await adding.outcome;
  notInternal(t, added, 'the racing portmap ADD');
  const deleted = await deleting;
  t.equal(deleted?.message, undefined, 'the racing DEL succeeds');
  const address = resultAddress(bridge.json);
  t.strictSame((await nftElements(sandbox)).filter((element) => element.includes(address)), [], `no element refers to the released ${address}`);
  t.strictSame(stateFiles(sandbox), [], 'no state file is left');
  t.strictSame(reservationFiles(sandbox, list), [], 'the address is released');

  // portmap ADD is held up before it does anything; the whole DEL runs meanwhile.
  const second_ = withPorts(sandbox, await sandbox.addContainer(), 8081);
  const secondBridge = await runPlugin(sandbox, { type: 'trestle-bridge', command: 'ADD', config: pluginInput(list, bridgeOf(list), second_), attachment: second_ });
  const late = startPlugin(sandbox, { type: 'trestle-portmap', command: 'ADD', config: pluginInput(list, portmapOf(list), second_, secondBridge.json), attachment: second_ });
  const pid = await late.pid;
  process.kill(pid, 'SIGSTOP');
  await succeeds(t, 'the DEL that overtakes the ADD', () => chainDel(sandbox, list, second_));
  process.kill(pid, 'SIGCONT');
  const lateOutcome = await late.outcome;
  t.not(lateOutcome.exitCode, 0, `the late portmap ADD refuses: its container's veth is gone (${describeOutcome(lateOutcome)})`);
  notInternal(t, lateOutcome, 'the late portmap ADD');
  t.notOk(alive(pid), 'it has ended');
  const secondAddress = resultAddress(secondBridge.json);
  t.strictSame((await nftElements(sandbox)).filter((element) => element.includes(secondAddress)), [], `no element refers to the released ${secondAddress}`);
  await chainGc(sandbox, list, []);
  await nothingLeft(t, sandbox, list, 'nothing is left after GC');
});
