// The disk store reads the reference's layout and tells reservations from the other
// files that live beside them.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { DiskStore } from '../../src/ipam/disk-store.js';

function store(t: { teardown(fn: () => void): void }): DiskStore {
  const dataDir = mkdtempSync(join(tmpdir(), 'trestle-store-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const disk = new DiskStore(dataDir, 'net');
  mkdirSync(disk.directory);
  return disk;
}

t.test('list() reads reservations and nothing else', async (t) => {
  const disk = store(t);
  const files: Record<string, string> = {
    '10.0.0.2': 'c1\r\neth0',
    '10.0.0.3': 'c2\neth1\n',
    '10.0.0.4': '  old-format-id  ',
    'fd00::2': 'c3\r\neth0',
    '2001:db8:0:1:1:1:1:1': 'c4\r\neth0',
    lock: '',
    'last_reserved_ip.0': '10.0.0.4',
    'last_reserved_ip.1': 'fd00::2',
    '.trestle-status-42': '',
    'notes.txt': 'c1\r\neth0',
    '10.0.0': 'c1\r\neth0',
  };
  for (const [name, content] of Object.entries(files)) writeFileSync(join(disk.directory, name), content);
  mkdirSync(join(disk.directory, 'trestle.lock'));
  mkdirSync(join(disk.directory, '10.0.0.9'));
  const listed = disk.list().sort((a, b) => a.ip.localeCompare(b.ip));
  t.strictSame(listed, [
    { ip: '10.0.0.2', containerId: 'c1', ifname: 'eth0' },
    { ip: '10.0.0.3', containerId: 'c2', ifname: 'eth1' },
    { ip: '10.0.0.4', containerId: 'old-format-id', ifname: '' },
    { ip: '2001:db8:0:1:1:1:1:1', containerId: 'c4', ifname: 'eth0' },
    { ip: 'fd00::2', containerId: 'c3', ifname: 'eth0' },
  ]);
});

t.test('list() of a network that has no directory yet is empty', async (t) => {
  const disk = store(t);
  t.strictSame(new DiskStore(join(disk.directory, 'missing'), 'net').list(), []);
});

t.test('reserve() writes the reference record and refuses a taken address', async (t) => {
  const disk = store(t);
  t.ok(disk.reserve('10.0.0.2', 'c1', 'eth0', 0));
  t.notOk(disk.reserve('10.0.0.2', 'c2', 'eth0', 0), 'O_EXCL: the second claim loses');
  t.equal(readFileSync(join(disk.directory, '10.0.0.2'), 'utf8'), 'c1\r\neth0');
  t.equal(disk.lastReserved(0), '10.0.0.2');
  t.equal(disk.lastReserved(1), undefined);
  disk.release('10.0.0.2');
  disk.release('10.0.0.2');
  t.strictSame(disk.list(), [], 'release is idempotent');
});

t.test('withLock() serializes work in one process too', async (t) => {
  const disk = store(t);
  const order: string[] = [];
  const slow = (label: string) => disk.withLock(async () => {
    order.push(`${label} in`);
    await new Promise((resolve) => setTimeout(resolve, 20));
    order.push(`${label} out`);
  });
  await Promise.all([slow('a'), slow('b')]);
  t.strictSame(order.slice(0, 2).map((step) => step.split(' ')[1]), ['in', 'out'], 'the second waits for the first');
});

t.test('reserve() leaves no temporary file, and a record is never half-written', async (t) => {
  const disk = store(t);
  await disk.withLock(() => {
    t.ok(disk.reserve('10.0.0.2', 'c1', 'eth0', 0));
    t.notOk(disk.reserve('10.0.0.2', 'c2', 'eth0', 0));
    t.ok(disk.reserve('10.0.0.3', 'c2', 'eth0', 0));
  });
  t.strictSame(readdirSync(disk.directory).filter((name) => name.endsWith('.tmp')), []);
  t.equal(readFileSync(join(disk.directory, '10.0.0.3'), 'utf8'), 'c2\r\neth0');
});

t.test('removeDebris() removes old empty or unreadable records and temp files, and nothing else', async (t) => {
  const disk = store(t);
  const old = new Date(Date.now() - 120_000);
  const files: Record<string, string> = {
    '10.0.0.2': 'c1\r\neth0',
    '10.0.0.3': '',
    '10.0.0.4': '\u0000\u0001garbage with spaces\r\neth0\r\nmore',
    '.trestle-record.123.tmp': 'c9\r\neth0',
    'last_reserved_ip.0': '10.0.0.2',
  };
  for (const [name, content] of Object.entries(files)) {
    writeFileSync(join(disk.directory, name), content);
    utimesSync(join(disk.directory, name), old, old);
  }
  writeFileSync(join(disk.directory, '10.0.0.5'), '');
  t.strictSame(disk.removeDebris(60_000).sort(), ['.trestle-record.123.tmp', '10.0.0.3', '10.0.0.4']);
  t.strictSame(readdirSync(disk.directory).sort(), ['10.0.0.2', '10.0.0.5', 'last_reserved_ip.0'], 'a fresh empty record is left to its writer');
});

t.test('withLock() takes over the lock of a dead holder within its stale period', async (t) => {
  const disk = store(t);
  const orphan = join(disk.directory, 'trestle.lock');
  mkdirSync(orphan);
  const old = new Date(Date.now() - 60_000);
  utimesSync(orphan, old, old);
  const started = Date.now();
  t.equal(await disk.withLock(() => 'done'), 'done');
  t.ok(Date.now() - started < 3_000, 'an orphaned lock costs at most the stale period');
});
