// The reference host-local and trestle-host-local on one dataDir: a node may switch
// from one to the other, or run both, without losing or doubling an allocation.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import {
  add,
  addressesOf,
  del,
  invoke,
  network,
  owner,
  referenceHostLocal as reference,
  referenceVersion,
  reservations,
  storeIdle,
  tempDir,
  trestleHostLocal as trestle,
  type Json,
  type Outcome,
} from '../helpers/host-local.js';

const dualStack = { ranges: [[{ subnet: '10.50.0.0/24' }], [{ subnet: 'fd50::/64' }]] };

function shared(dataDir: string, ipam: Json = dualStack): Json {
  return network(dataDir, { cniVersion: referenceVersion, ipam });
}

function pluginFor(i: number): string {
  return i % 2 === 0 ? reference : trestle;
}

function otherPlugin(plugin: string): string {
  return plugin === reference ? trestle : reference;
}

function failuresOf(outcomes: Outcome[]): string[] {
  return outcomes.filter((outcome) => outcome.exitCode !== 0).map((outcome) => outcome.stdout + outcome.stderr);
}

t.test('sequential interleaved ADDs share one round robin; each DELs what the other reserved', async (t) => {
  const dataDir = tempDir(t);
  const conf = shared(dataDir);
  const ids = Array.from({ length: 20 }, (_, i) => `seq-${i}`);
  const got: string[][] = [];
  for (const [i, containerId] of ids.entries()) {
    const outcome = await add(pluginFor(i), { containerId }, conf);
    t.equal(outcome.exitCode, 0, `${containerId} by ${pluginFor(i)}`);
    got.push(addressesOf(outcome));
  }
  t.strictSame(
    got,
    ids.map((_, i) => [`10.50.0.${i + 2}`, `fd50::${(i + 2).toString(16)}`]),
    'each continues after the address the other reserved last, in both families',
  );
  const store = reservations(dataDir);
  t.equal(store.size, 40);
  for (const [i, containerId] of ids.entries()) t.equal(store.get(`10.50.0.${i + 2}`), owner(containerId), `${containerId}'s record`);

  for (const [i, containerId] of ids.entries()) {
    const outcome = await del(otherPlugin(pluginFor(i)), { containerId }, conf);
    t.equal(outcome.exitCode, 0, `${containerId} deleted by the other plugin`);
  }
  t.strictSame([...reservations(dataDir).keys()], [], 'everything released');
});

t.test('concurrent ADDs from both plugins never double-allocate', async (t) => {
  const dataDir = tempDir(t);
  const conf = shared(dataDir);
  const ids = Array.from({ length: 60 }, (_, i) => `conc-${i}`);
  const outcomes = await Promise.all(ids.map((containerId, i) => add(pluginFor(i), { containerId }, conf)));
  t.strictSame(failuresOf(outcomes), [], 'every ADD succeeded');
  const v4 = outcomes.map((outcome) => addressesOf(outcome)[0]);
  const v6 = outcomes.map((outcome) => addressesOf(outcome)[1]);
  t.equal(new Set(v4).size, ids.length, 'distinct IPv4 addresses');
  t.equal(new Set(v6).size, ids.length, 'distinct IPv6 addresses');
  const store = reservations(dataDir);
  t.equal(store.size, 2 * ids.length, 'one file per address, none lost');
  for (const [i, containerId] of ids.entries()) {
    t.equal(store.get(v4[i] as string), owner(containerId), `${containerId} owns ${v4[i]}`);
    t.equal(store.get(v6[i] as string), owner(containerId), `${containerId} owns ${v6[i]}`);
  }

  const deletions = await Promise.all(ids.map((containerId, i) => del(otherPlugin(pluginFor(i)), { containerId }, conf)));
  t.strictSame(failuresOf(deletions), [], 'every cross DEL succeeded');
  t.equal(reservations(dataDir).size, 0, 'everything released');
});

t.test('ADDs racing for a nearly full range: each address goes to exactly one winner', async (t) => {
  const dataDir = tempDir(t);
  const conf = shared(dataDir, { ranges: [[{ subnet: '10.51.0.0/28' }]] });
  const ids = Array.from({ length: 20 }, (_, i) => `race-${i}`);
  const outcomes = await Promise.all(ids.map((containerId, i) => add(pluginFor(i), { containerId }, conf)));
  const winners = outcomes.filter((outcome) => outcome.exitCode === 0);
  t.equal(winners.length, 13, 'a /28 holds 13 (gateway and broadcast excluded)');
  const addresses = winners.map((outcome) => addressesOf(outcome)[0]);
  t.equal(new Set(addresses).size, 13, 'no address was given twice');
  t.equal(reservations(dataDir).size, 13);
  for (const loser of outcomes.filter((outcome) => outcome.exitCode !== 0)) t.match(loser.stdout, /no IP addresses available/);
});

t.test('the same calls give the same addresses and the same files as the reference', async (t) => {
  async function scenario(plugin: string) {
    const dataDir = tempDir(t);
    const conf = shared(dataDir, { ranges: [[{ subnet: '10.52.0.0/29' }], [{ subnet: 'fd52:0:0:1::/125' }]] });
    const steps: string[] = [];
    const run = async (command: 'ADD' | 'DEL', containerId: string, cniArgs?: string) => {
      const attach = cniArgs === undefined ? { containerId } : { containerId, cniArgs };
      const outcome = command === 'ADD' ? await add(plugin, attach, conf) : await del(plugin, attach, conf);
      steps.push(`${command} ${containerId}: ${outcome.exitCode === 0 ? addressesOf(outcome).join(' ') : 'failed'}`);
    };
    for (const id of ['a', 'b', 'c', 'd']) await run('ADD', id);
    await run('ADD', 'e', 'IP=10.52.0.6');
    await run('ADD', 'f');
    await run('DEL', 'b');
    await run('DEL', 'd');
    await run('ADD', 'g');
    await run('ADD', 'h');
    const directory = join(dataDir, 'testnet');
    await storeIdle(directory);
    const files = readdirSync(directory)
      .filter((name) => name !== 'lock')
      .sort()
      .map((name) => `${name}=${JSON.stringify(readFileSync(join(directory, name), 'utf8'))}`);
    return { steps, files };
  }
  const ours = await scenario(trestle);
  const theirs = await scenario(reference);
  t.strictSame(ours.steps, theirs.steps, 'same addresses, same failures');
  t.strictSame(ours.files, theirs.files, 'byte-identical store (names, owners, last_reserved_ip.<n>)');
  t.strictSame(
    ours.steps,
    [
      'ADD a: 10.52.0.2 fd52:0:0:1::2',
      'ADD b: 10.52.0.3 fd52:0:0:1::3',
      'ADD c: 10.52.0.4 fd52:0:0:1::4',
      'ADD d: 10.52.0.5 fd52:0:0:1::5',
      'ADD e: 10.52.0.6 fd52:0:0:1::6',
      'ADD f: failed',
      'DEL b: ',
      'DEL d: ',
      'ADD g: 10.52.0.3 fd52:0:0:1::7',
      'ADD h: 10.52.0.5 fd52:0:0:1::3',
    ],
    'the reference order: a full IPv4 set fails the whole ADD; each set wraps after its own last reserved address',
  );
});

t.test('an owner known to one plugin is a duplicate for the other; requests respect both', async (t) => {
  const dataDir = tempDir(t);
  const conf = shared(dataDir);
  t.equal((await add(reference, { containerId: 'r1' }, conf)).exitCode, 0);
  t.equal((await add(trestle, { containerId: 't1' }, conf)).exitCode, 0);
  t.not((await add(trestle, { containerId: 'r1' }, conf)).exitCode, 0, 'trestle refuses a second ADD of a reference owner');
  t.not((await add(reference, { containerId: 't1' }, conf)).exitCode, 0, 'the reference refuses a second ADD of a trestle owner');

  t.equal((await add(reference, { containerId: 'r2', cniArgs: 'IP=10.50.0.77' }, conf)).exitCode, 0);
  const taken = await add(trestle, { containerId: 't2', cniArgs: 'IP=10.50.0.77' }, conf);
  t.equal(taken.json?.['code'], 101, 'trestle will not take an address the reference reserved');
  t.equal((await add(trestle, { containerId: 't3', cniArgs: 'IP=10.50.0.78' }, conf)).exitCode, 0);
  t.not((await add(reference, { containerId: 'r3', cniArgs: 'IP=10.50.0.78' }, conf)).exitCode, 0, 'nor the reference one trestle reserved');
  t.equal(reservations(dataDir).size, 8);
});

t.test('trestle GC collects what the reference reserved', async (t) => {
  const dataDir = tempDir(t);
  const conf = shared(dataDir);
  for (const containerId of ['live', 'dead']) t.equal((await add(reference, { containerId }, conf)).exitCode, 0);
  const gcConf = { ...conf, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'live', ifname: 'eth0' }] };
  const outcome = await invoke(trestle, { command: 'GC', cniPath: '/usr/lib/cni' }, gcConf);
  t.equal(outcome.exitCode, 0, outcome.stdout);
  t.strictSame([...new Set(reservations(dataDir).values())], [owner('live')], 'only the live container keeps its addresses');
  t.equal(reservations(dataDir).size, 2);
});
