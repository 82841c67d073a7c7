// GC (1.1.0) releases exactly the reservations of attachments the runtime no longer
// knows; STATUS tells whether the store can take new ones.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { add, addressesOf, invoke, network, owner, reservations, tempDir, trestleHostLocal as plugin, type Json } from '../helpers/host-local.js';

function gc(conf: Json, valid: Array<{ containerID: string; ifname: string }>) {
  return invoke(plugin, { command: 'GC', cniPath: '/usr/lib/cni' }, { ...conf, 'cni.dev/valid-attachments': valid });
}

t.test('GC releases exactly the stale reservations', async (t) => {
  const dataDir = tempDir(t);
  const conf = network(dataDir, { ipam: { ranges: [[{ subnet: '10.40.0.0/24' }], [{ subnet: 'fd40::/64' }]] } });
  const attachments = [
    { containerId: 'keep', ifname: 'eth0' },
    { containerId: 'keep', ifname: 'net1' },
    { containerId: 'stale', ifname: 'eth0' },
    { containerId: 'gone', ifname: 'eth0' },
  ];
  const held = new Map<string, string[]>();
  for (const attachment of attachments) {
    const outcome = await add(plugin, attachment, conf);
    held.set(`${attachment.containerId}/${attachment.ifname}`, addressesOf(outcome));
  }
  // An entry from an old host-local that recorded only the container ID.
  writeFileSync(join(dataDir, 'testnet', '10.40.0.200'), 'keep');
  writeFileSync(join(dataDir, 'testnet', '10.40.0.201'), 'old');
  // What the reference leaves for an instant between creating a record and writing it.
  writeFileSync(join(dataDir, 'testnet', '10.40.0.202'), '');
  t.equal(reservations(dataDir).size, 11);

  const outcome = await gc(conf, [
    { containerID: 'keep', ifname: 'eth0' },
    { containerID: 'keep', ifname: 'net1' },
    { containerID: 'stale', ifname: 'net9' },
  ]);
  t.equal(outcome.exitCode, 0, outcome.stdout);
  t.equal(outcome.stdout, '', 'GC prints nothing on success');
  const left = reservations(dataDir);
  const kept = [...(held.get('keep/eth0') ?? []), ...(held.get('keep/net1') ?? []), '10.40.0.200', '10.40.0.202'];
  t.strictSame([...left.keys()].sort(), kept.sort(), 'valid attachments, an ID-only entry of a valid container and a record being written stay');
  for (const ip of held.get('keep/net1') ?? []) t.equal(left.get(ip), owner('keep', 'net1'));

  const everything = await gc(conf, []);
  t.equal(everything.exitCode, 0);
  t.strictSame([...reservations(dataDir).keys()], ['10.40.0.202'], 'an empty list of valid attachments releases every owned record');
});

t.test('GC without the attachment list is refused rather than releasing everything', async (t) => {
  const dataDir = tempDir(t);
  const conf = network(dataDir);
  await add(plugin, { containerId: 'c1' }, conf);
  const outcome = await invoke(plugin, { command: 'GC', cniPath: '/usr/lib/cni' }, conf);
  t.equal(outcome.json?.['code'], 7);
  t.equal(reservations(dataDir).size, 1);
});

t.test('GC leaves other networks alone', async (t) => {
  const dataDir = tempDir(t);
  const mine = network(dataDir);
  const theirs = network(dataDir, { name: 'othernet' });
  await add(plugin, { containerId: 'c1' }, mine);
  await add(plugin, { containerId: 'c1' }, theirs);
  t.equal((await gc(mine, [])).exitCode, 0);
  t.equal(reservations(dataDir).size, 0);
  t.equal(reservations(dataDir, 'othernet').size, 1);
});

t.test('STATUS', async (t) => {
  const dataDir = tempDir(t);
  const status = (conf: Json) => invoke(plugin, { command: 'STATUS' }, conf);
  const ok = await status(network(dataDir));
  t.equal(ok.exitCode, 0, 'ok on a writable dataDir');
  t.equal(ok.stdout, '', 'prints nothing');

  writeFileSync(join(dataDir, 'a-file'), '');
  const blocked = await status(network(join(dataDir, 'a-file', 'networks')));
  t.not(blocked.exitCode, 0);
  t.equal(blocked.json?.['code'], 50, 'code 50 when the dataDir cannot be created');
  t.match(blocked.json?.['msg'], /not writable/);
  t.equal(blocked.json?.['cniVersion'], '1.1.0');
});
