// trestle-host-local as a process: exhaustion, reuse after DEL in the reference's
// round-robin order, duplicates, requested addresses, range overrides, dual stack.
import { existsSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import {
  add,
  addressesOf,
  del,
  invoke,
  attachCall,
  lastReserved,
  network,
  owner,
  reservations,
  tempDir,
  trestleHostLocal as plugin,
} from '../helpers/host-local.js';

const slash29 = { ranges: [[{ subnet: '10.0.0.0/29' }]] };

t.test('a /29: five addresses, then a clear exhaustion error; DEL frees in round-robin order', async (t) => {
  const dataDir = tempDir(t);
  const conf = network(dataDir, { ipam: slash29 });
  const got: string[] = [];
  for (const id of ['c1', 'c2', 'c3', 'c4', 'c5']) {
    const outcome = await add(plugin, { containerId: id }, conf);
    t.equal(outcome.exitCode, 0, `${id} added`);
    got.push(...addressesOf(outcome));
  }
  t.strictSame(got, ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6'], 'gateway .1 and broadcast .7 are never handed out');

  const full = await add(plugin, { containerId: 'c6' }, conf);
  t.not(full.exitCode, 0);
  t.equal(full.json?.['code'], 100);
  t.match(full.json?.['msg'], /no IP addresses available in range set 10\.0\.0\.1-10\.0\.0\.6/);
  t.equal(reservations(dataDir).size, 5, 'a failed ADD reserves nothing');

  t.equal((await del(plugin, { containerId: 'c2' }, conf)).exitCode, 0);
  t.equal((await del(plugin, { containerId: 'c4' }, conf)).exitCode, 0);
  t.notOk(reservations(dataDir).has('10.0.0.3'), 'DEL removed the file');
  t.equal(lastReserved(dataDir), '10.0.0.6');
  const first = await add(plugin, { containerId: 'c6' }, conf);
  t.strictSame(addressesOf(first), ['10.0.0.3'], 'after .6 the search wraps and takes the first free address');
  const second = await add(plugin, { containerId: 'c7' }, conf);
  t.strictSame(addressesOf(second), ['10.0.0.5'], 'then continues after .3 rather than restarting');
  t.equal(lastReserved(dataDir), '10.0.0.5');
  t.equal(reservations(dataDir).get('10.0.0.5'), owner('c7'));
});

t.test('result shape follows the configuration version', async (t) => {
  const dataDir = tempDir(t);
  const ipam = { ranges: [[{ subnet: '10.0.0.0/24', gateway: '10.0.0.254' }]], routes: [{ dst: '0.0.0.0/0' }] };
  const legacy = await add(plugin, { containerId: 'old' }, network(dataDir, { cniVersion: '0.2.0', ipam }));
  t.strictSame(legacy.json, { cniVersion: '0.2.0', ip4: { ip: '10.0.0.1/24', gateway: '10.0.0.254', routes: [{ dst: '0.0.0.0/0' }] }, dns: {} });
  const v031 = await add(plugin, { containerId: 'mid' }, network(dataDir, { cniVersion: '0.3.1', ipam }));
  t.strictSame(v031.json, {
    cniVersion: '0.3.1',
    ips: [{ version: '4', address: '10.0.0.2/24', gateway: '10.0.0.254' }],
    routes: [{ dst: '0.0.0.0/0' }],
    dns: {},
  });
  const v1 = await add(plugin, { containerId: 'new' }, network(dataDir, { cniVersion: '1.0.0', ipam }));
  t.strictSame(v1.json, { cniVersion: '1.0.0', ips: [{ address: '10.0.0.3/24', gateway: '10.0.0.254' }], routes: [{ dst: '0.0.0.0/0' }], dns: {} });
});

t.test('duplicate ADD, unknown DEL, double DEL', async (t) => {
  const dataDir = tempDir(t);
  const conf = network(dataDir);
  t.equal((await add(plugin, { containerId: 'c1' }, conf)).exitCode, 0);
  const again = await add(plugin, { containerId: 'c1' }, conf);
  t.not(again.exitCode, 0, 'the same container and interface cannot ADD twice');
  t.match(again.json?.['msg'], /10\.10\.0\.2 is already allocated to c1\/eth0/);
  t.strictSame([...reservations(dataDir).keys()], ['10.10.0.2'], 'the failed duplicate reserved nothing');
  const otherInterface = await add(plugin, { containerId: 'c1', ifname: 'net1' }, conf);
  t.strictSame(addressesOf(otherInterface), ['10.10.0.3'], 'another interface of the same container is another owner');

  t.equal((await del(plugin, { containerId: 'never-added' }, conf)).exitCode, 0, 'DEL of an unknown container succeeds');
  t.equal(reservations(dataDir).size, 2, 'and releases nothing');
  t.equal((await del(plugin, { containerId: 'c1' }, conf)).exitCode, 0);
  t.strictSame([...reservations(dataDir)], [['10.10.0.3', owner('c1', 'net1')]], 'DEL releases only its own interface');
  t.equal((await del(plugin, { containerId: 'c1' }, conf)).exitCode, 0, 'a second DEL succeeds');
  const delWithoutNetns = await invoke(plugin, { ...attachCall('DEL', { containerId: 'c1', ifname: 'net1' }), netns: '' }, conf);
  t.equal(delWithoutNetns.exitCode, 0, 'DEL without CNI_NETNS succeeds');
  t.equal(reservations(dataDir).size, 0);
  const unknownNetwork = await del(plugin, { containerId: 'c1' }, network(dataDir, { name: 'never-used' }));
  t.equal(unknownNetwork.exitCode, 0, 'DEL on a network that has no store yet succeeds');
});

// Another writer (the reference plugin, a one-shot call while the daemon restarts)
// changes the store between two ADDs: the duplicate check sees it, in resident mode
// through the daemon's watch of the directory.
t.test('records added, replaced or removed by another writer count at the next ADD', async (t) => {
  const dataDir = tempDir(t);
  const conf = network(dataDir);
  const store = join(dataDir, 'testnet');
  t.equal((await add(plugin, { containerId: 'c1' }, conf)).exitCode, 0);

  writeFileSync(join(store, '10.10.0.50'), 'c9\r\neth0');
  const held = await add(plugin, { containerId: 'c9' }, conf);
  t.match(held.json?.['msg'], /10\.10\.0\.50 is already allocated to c9\/eth0/, 'a record written behind its back');

  writeFileSync(join(store, '.replacement'), 'c8\r\neth0');
  renameSync(join(store, '.replacement'), join(store, '10.10.0.50'));
  t.equal((await add(plugin, { containerId: 'c9' }, conf)).exitCode, 0, 'c9 lost it to a rename over its record');
  t.match((await add(plugin, { containerId: 'c8' }, conf)).json?.['msg'], /10\.10\.0\.50 is already allocated to c8\/eth0/, 'and c8 holds it');

  unlinkSync(join(store, '10.10.0.50'));
  t.strictSame(addressesOf(await add(plugin, { containerId: 'c8' }, conf)).length, 1, 'a record removed behind its back frees its owner');
});

t.test('CHECK', async (t) => {
  const dataDir = tempDir(t);
  const conf = network(dataDir);
  const added = await add(plugin, { containerId: 'c1' }, conf);
  const withPrev = { ...conf, prevResult: added.json };
  t.equal((await invoke(plugin, attachCall('CHECK', { containerId: 'c1' }), withPrev)).exitCode, 0, 'CHECK of what ADD returned passes');
  const wrong = { ...conf, prevResult: { cniVersion: '1.1.0', ips: [{ address: '10.10.0.77/24' }] } };
  const failed = await invoke(plugin, attachCall('CHECK', { containerId: 'c1' }), wrong);
  t.not(failed.exitCode, 0, 'CHECK of an address it does not hold fails');
  t.match(failed.json?.['msg'], /10\.10\.0\.77/);
  t.not((await invoke(plugin, attachCall('CHECK', { containerId: 'other' }), withPrev)).exitCode, 0, 'CHECK of another container fails');
  const legacyPrev = { ...conf, cniVersion: '0.4.0', prevResult: { cniVersion: '0.2.0', ip4: { ip: '10.10.0.2/24' }, dns: {} } };
  t.equal((await invoke(plugin, attachCall('CHECK', { containerId: 'c1' }), legacyPrev)).exitCode, 0, 'a 0.2.0-shaped prevResult is understood');
});

t.test('requested addresses: CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips', async (t) => {
  const dataDir = tempDir(t);
  const conf = network(dataDir);
  t.strictSame(addressesOf(await add(plugin, { containerId: 'a', cniArgs: 'IP=10.10.0.50' }, conf)), ['10.10.0.50']);
  const fromArgs = network(dataDir, { extra: { args: { cni: { ips: ['10.10.0.51'] } } } });
  t.strictSame(addressesOf(await add(plugin, { containerId: 'b' }, fromArgs)), ['10.10.0.51']);
  const fromRuntime = network(dataDir, { extra: { runtimeConfig: { ips: ['10.10.0.52/24'] } } });
  t.strictSame(addressesOf(await add(plugin, { containerId: 'c' }, fromRuntime)), ['10.10.0.52']);
  t.equal(reservations(dataDir).get('10.10.0.52'), owner('c'));

  const taken = await add(plugin, { containerId: 'd', cniArgs: 'IP=10.10.0.50' }, conf);
  t.equal(taken.json?.['code'], 101, 'a taken address is refused');
  t.match(taken.json?.['msg'], /10\.10\.0\.50 is not available/);
  const gateway = await add(plugin, { containerId: 'd', cniArgs: 'IP=10.10.0.1' }, conf);
  t.match(gateway.json?.['msg'], /gateway/);
  const outside = await add(plugin, { containerId: 'd', cniArgs: 'IP=192.168.1.5' }, conf);
  t.equal(outside.json?.['code'], 101);
  t.match(outside.json?.['msg'], /192\.168\.1\.5/);
  t.equal(reservations(dataDir).size, 3, 'refused requests reserved nothing');
  t.equal(lastReserved(dataDir), '10.10.0.52');
});

t.test('runtimeConfig.ipRanges replaces the configured ranges', async (t) => {
  const dataDir = tempDir(t);
  const conf = network(dataDir, { extra: { runtimeConfig: { ipRanges: [[{ subnet: '192.168.77.0/24', rangeStart: '192.168.77.100' }]] } } });
  const outcome = await add(plugin, { containerId: 'c1' }, conf);
  t.strictSame(outcome.json?.['ips'], [{ address: '192.168.77.100/24', gateway: '192.168.77.1' }]);
});

t.test('dual stack: one IPv4 and one IPv6 range set; IPv6 file names in RFC 5952 form', async (t) => {
  const dataDir = tempDir(t);
  const conf = network(dataDir, {
    ipam: { ranges: [[{ subnet: '10.20.0.0/24' }], [{ subnet: 'FD00:0000:0000:0000::/64' }]], routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }] },
  });
  const first = await add(plugin, { containerId: 'c1' }, conf);
  t.strictSame(first.json, {
    cniVersion: '1.1.0',
    ips: [
      { address: '10.20.0.2/24', gateway: '10.20.0.1' },
      { address: 'fd00::2/64', gateway: 'fd00::1' },
    ],
    routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
    dns: {},
  });
  const requested = await add(plugin, { containerId: 'c2', cniArgs: 'IP=10.20.0.9,fd00:0:0:0:0:0:0:a' }, conf);
  t.strictSame(addressesOf(requested), ['10.20.0.9', 'fd00::a'], 'one requested address per family');
  const store = reservations(dataDir);
  t.strictSame([...store.keys()].sort(), ['10.20.0.2', '10.20.0.9', 'fd00::2', 'fd00::a']);
  t.equal(store.get('fd00::a'), owner('c2'));
  t.equal(lastReserved(dataDir, 1), 'fd00::a', 'each range set keeps its own last_reserved_ip.<n>');
  t.equal(lastReserved(dataDir, 0), '10.20.0.9');

  const twoInOneSet = await add(plugin, { containerId: 'c3', cniArgs: 'IP=10.20.0.10,10.20.0.11' }, conf);
  t.equal(twoInOneSet.json?.['code'], 101, 'two requests for one range set are refused');

  t.equal((await del(plugin, { containerId: 'c1' }, conf)).exitCode, 0);
  t.strictSame([...reservations(dataDir).keys()].sort(), ['10.20.0.9', 'fd00::a'], 'DEL releases both families');
});

t.test('an IPv6 set fills up and reports its range', async (t) => {
  const dataDir = tempDir(t);
  const conf = network(dataDir, { ipam: { ranges: [[{ subnet: 'fd00:1::/64', rangeStart: 'fd00:1::ffff:fff0', rangeEnd: 'fd00:1::ffff:fff1' }]] } });
  const got = [];
  for (const id of ['a', 'b']) got.push(...addressesOf(await add(plugin, { containerId: id }, conf)));
  t.strictSame(got, ['fd00:1::ffff:fff0', 'fd00:1::ffff:fff1']);
  const full = await add(plugin, { containerId: 'c' }, conf);
  t.equal(full.json?.['code'], 100);
  t.match(full.json?.['msg'], /fd00:1::ffff:fff0-fd00:1::ffff:fff1/);
  t.ok(existsSync(join(dataDir, 'testnet', 'fd00:1::ffff:fff0')));
});

t.test('DEL with a prevResult releases its addresses without scanning, and falls back when it is stale', async (t) => {
  const { mkdtempSync, readdirSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { execFileSync } = await import('node:child_process');
  const dataDir = mkdtempSync(join(tmpdir(), 'trestle-del-hint-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const config = { cniVersion: '1.1.0', name: 'hint', type: 'trestle-host-local', ipam: { type: 'trestle-host-local', dataDir, ranges: [[{ subnet: '10.66.0.0/24' }]] } };
  const run = (command: string, id: string, extra: Record<string, unknown> = {}) =>
    execFileSync(new URL('../../bin/trestle-host-local', import.meta.url).pathname, [], {
      input: JSON.stringify({ ...config, ...extra }),
      env: { PATH: process.env['PATH'], CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: '/x', CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni', TRESTLE_SOCKET: join(dataDir, 'no-daemon.sock') },
    }).toString();
  const first = JSON.parse(run('ADD', 'a')) as { ips: Array<{ address: string }> };
  run('ADD', 'b');
  run('DEL', 'a', { prevResult: first });
  const addresses = () => readdirSync(join(dataDir, 'hint')).filter((name) => /^\d/.test(name));
  t.same(addresses(), ['10.66.0.3'], "a's address is released, b's kept");
  run('DEL', 'b', { prevResult: first });
  t.same(addresses(), [], 'a prevResult naming addresses the container does not hold falls back to the scan');
});
