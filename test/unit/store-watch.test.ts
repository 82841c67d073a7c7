// A long-lived process (the daemon) keeps each store directory's reservation names
// current through inotify instead of reading the directory on every ADD. Whatever
// other processes do to the directory between two looks, heldBy() must answer as a
// fresh read would.
import { linkSync, mkdirSync, mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { DirectoryWatch } from '../../src/host/native/inotify.js';
import { DiskStore, watchStoreDirectories } from '../../src/ipam/disk-store.js';

watchStoreDirectories();

function dataDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'trestle-watch-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const ips = (reservations: Array<{ ip: string }>) => reservations.map((reservation) => reservation.ip).sort();

t.test('a watch reports names entering and leaving, in order', async (t) => {
  const dir = dataDir(t);
  const watch = DirectoryWatch.open(dir);
  if (!watch) throw new Error('inotify is not available');
  t.teardown(() => watch.close());
  writeFileSync(join(dir, 'a'), '');
  linkSync(join(dir, 'a'), join(dir, 'b'));
  renameSync(join(dir, 'a'), join(dir, 'c'));
  unlinkSync(join(dir, 'b'));
  t.strictSame(watch.changes(), {
    changes: [
      { name: 'a', present: true },
      { name: 'b', present: true },
      { name: 'a', present: false },
      { name: 'c', present: true },
      { name: 'b', present: false },
    ],
    lost: false,
    ended: false,
  });
  t.strictSame(watch.changes().changes, [], 'each change is reported once');
});

t.test('two watches of one directory each see every change', async (t) => {
  const dir = dataDir(t);
  const first = DirectoryWatch.open(dir);
  const second = DirectoryWatch.open(dir);
  if (!first || !second) throw new Error('inotify is not available');
  writeFileSync(join(dir, 'a'), '');
  t.strictSame(first.changes().changes, [{ name: 'a', present: true }]);
  first.close();
  writeFileSync(join(dir, 'b'), '');
  t.strictSame(second.changes().changes, [{ name: 'a', present: true }, { name: 'b', present: true }], 'closing one leaves the other watching');
  second.close();
});

t.test('a watch left unread too long says it lost track instead of keeping every change', async (t) => {
  const dir = dataDir(t);
  const watch = DirectoryWatch.open(dir);
  if (!watch) throw new Error('inotify is not available');
  t.teardown(() => watch.close());
  for (let i = 0; i <= 10_000; i++) writeFileSync(join(dir, String(i)), '');
  const seen = watch.changes();
  t.ok(seen.lost, 'lost');
  t.notOk(seen.ended, 'still watching');
  t.strictSame(seen.changes, [], 'nothing kept');
  writeFileSync(join(dir, 'next'), '');
  t.strictSame(watch.changes(), { changes: [{ name: 'next', present: true }], lost: false, ended: false }, 'reports again after that');
});

t.test('a watch of a removed directory ends', async (t) => {
  const dir = dataDir(t);
  mkdirSync(join(dir, 'net'));
  const watch = DirectoryWatch.open(join(dir, 'net'));
  if (!watch) throw new Error('inotify is not available');
  rmSync(join(dir, 'net'), { recursive: true });
  const seen = watch.changes();
  t.ok(seen.lost && seen.ended);
  watch.close();
  t.equal(DirectoryWatch.open(join(dir, 'missing')), undefined, 'a missing directory cannot be watched');
});

t.test('heldBy() sees what other processes did between two looks', async (t) => {
  const store = new DiskStore(dataDir(t), 'net');
  await store.withLock(() => {
    t.strictSame(store.heldBy('c1', 'eth0'), [], 'before the directory exists');
    t.ok(store.reserve('10.0.0.2', 'c1', 'eth0', 0));
    t.ok(store.reserve('10.0.0.3', 'c2', 'eth0', 0));
  });
  t.strictSame(ips(store.heldBy('c1', 'eth0')), ['10.0.0.2']);
  t.strictSame(ips(store.heldBy('c2', 'eth0')), ['10.0.0.3']);

  // Another writer (the reference plugin, a one-shot call) adds, removes and replaces.
  writeFileSync(join(store.directory, '10.0.0.4'), 'c1\r\neth0');
  unlinkSync(join(store.directory, '10.0.0.3'));
  writeFileSync(join(store.directory, '.replacement'), 'c1\r\neth0');
  renameSync(join(store.directory, '.replacement'), join(store.directory, '10.0.0.2'));
  writeFileSync(join(store.directory, '.other'), 'c3\r\neth0');
  renameSync(join(store.directory, '.other'), join(store.directory, '10.0.0.2'));
  t.strictSame(ips(store.heldBy('c1', 'eth0')), ['10.0.0.4']);
  t.strictSame(ips(store.heldBy('c2', 'eth0')), [], 'a removed record is gone');
  t.strictSame(ips(store.heldBy('c3', 'eth0')), ['10.0.0.2'], 'a record replaced by a rename is read again');

  // The whole directory removed and made again.
  rmSync(store.directory, { recursive: true });
  t.strictSame(store.heldBy('c1', 'eth0'), []);
  mkdirSync(store.directory);
  writeFileSync(join(store.directory, '10.0.0.9'), 'c1\r\neth0');
  t.strictSame(ips(store.heldBy('c1', 'eth0')), ['10.0.0.9'], 'a new directory is watched again');
  writeFileSync(join(store.directory, '10.0.0.10'), 'c1\r\neth0');
  t.strictSame(ips(store.heldBy('c1', 'eth0')), ['10.0.0.10', '10.0.0.9']);
});
