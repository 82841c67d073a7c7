// 100 ADDs at once, each its own process, as a runtime starting 100 pods would run them.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { add, addressesOf, del, network, owner, reservations, storeIdle, tempDir, trestleHostLocal as plugin } from '../helpers/host-local.js';

const count = 100;

function byLastOctet(a: string | undefined, b: string | undefined): number {
  return Number(a?.split('.')[3]) - Number(b?.split('.')[3]);
}

t.test(`${count} parallel ADDs on one dataDir get ${count} distinct addresses`, async (t) => {
  const dataDir = tempDir(t);
  const conf = network(dataDir, { ipam: { ranges: [[{ subnet: '10.30.0.0/24' }]] } });
  const ids = Array.from({ length: count }, (_, i) => `parallel-${i}`);
  const outcomes = await Promise.all(ids.map((containerId) => add(plugin, { containerId }, conf)));

  const failures = outcomes.filter((outcome) => outcome.exitCode !== 0).map((outcome) => outcome.stdout + outcome.stderr);
  t.strictSame(failures, [], 'every ADD succeeded');
  const addresses = outcomes.map((outcome) => addressesOf(outcome)[0]);
  t.equal(new Set(addresses).size, count, 'no address handed out twice');
  const inOrder = Array.from({ length: count }, (_, i) => `10.30.0.${i + 2}`);
  t.strictSame([...addresses].sort(byLastOctet), inOrder, 'the lock serialized them: .2 to .101 without a gap');

  const directory = join(dataDir, 'testnet');
  const expected = new Map(ids.map((id, i) => [addresses[i] as string, owner(id)]));
  t.strictSame(reservations(dataDir), expected, 'one file <dataDir>/<network>/<ip> per container holding "<id>CRLF<ifname>"');
  await storeIdle(directory);
  t.strictSame(
    readdirSync(directory).filter((name) => !expected.has(name)),
    ['last_reserved_ip.0'],
    'besides the reservations only last_reserved_ip.0 (no lock left behind)',
  );
  t.ok(expected.has(readFileSync(join(directory, 'last_reserved_ip.0'), 'utf8')), 'last_reserved_ip.0 names a reserved address');

  const deletions = await Promise.all(ids.map((containerId) => del(plugin, { containerId }, conf)));
  t.strictSame(deletions.filter((outcome) => outcome.exitCode !== 0).map((outcome) => outcome.stdout), [], 'every parallel DEL succeeded');
  t.equal(reservations(dataDir).size, 0, 'parallel DELs released everything');
});
