import { closeSync, linkSync, mkdirSync, openSync, readSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isValidIdentifier } from '../cni/validate.js';
import { DirectoryWatch } from '../host/native/inotify.js';
import { olderThan } from '../util/debris.js';
import { overwriteInPlace, removeFile } from '../util/files.js';
import { withDirectoryLock } from '../util/lock.js';
import { ownedBy, type Reservation, type Store } from './store.js';

const lastReservedPrefix = 'last_reserved_ip.';
// The reference host-local writes "<containerID>\r\n<ifname>".
const lineBreak = '\r\n';
// Reservation files are named by an address as Go prints it (dotted IPv4, or IPv6 in
// RFC 5952 form, never dotted); lock, last_reserved_ip.<n> and our lock directory are
// not. Every ADD and DEL scans the whole directory, so the names are told apart by
// their shape: parsing each one as an address cost ~10 ms per 1,000 reservations.
const reservationName = /^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7})$/i;
// Our temporary files: a record is written whole here, then linked into place.
const temporaryPrefix = '.trestle-';
const temporarySuffix = '.tmp';
// An owner record is at most 255 + 2 + 15 bytes; anything longer is not one.
const recordBuffer = Buffer.alloc(1024);

type Record = { containerId: string; ifname: string } | 'empty' | 'unreadable';

// What a long-lived process (the daemon) knows of each store directory it has looked
// in. owners: the owner of each reservation read, by name: a record never changes
// while its name exists, so a later look for one owner's reservations reads only
// names not seen before (~9 ms per 1,000 reservations saved on every ADD). An entry is
// trusted only to say "another owner": every one that names the owner asked about is
// read again. Without a watch, what it cannot see is a name deleted and created again
// by another process between two looks. names and watch: the reservation names, kept
// current by inotify once watchStoreDirectories() is called, instead of reading the
// directory on every ADD (~0.45 ms at 1,000 reservations, growing with them).
interface KnownDirectory {
  owners: Map<string, Reservation>;
  watch?: DirectoryWatch;
  names?: Set<string>;
}
const known = new Map<string, KnownDirectory>();
let watching = false;

// For a process that serves many calls: worth a watch per store directory.
export function watchStoreDirectories(): void {
  watching = true;
}

function knownDirectory(directory: string): KnownDirectory {
  let entry = known.get(directory);
  if (!entry) {
    entry = { owners: new Map() };
    known.set(directory, entry);
  }
  return entry;
}

function parseRecord(content: string): Record {
  if (content.trim() === '') return 'empty';
  const [containerId = '', ifname = '', ...rest] = content.trim().split(/\r?\n/);
  const id = containerId.trim();
  if (rest.length > 0 || !isValidIdentifier(id) || Buffer.byteLength(ifname.trim()) > 15) return 'unreadable';
  return { containerId: id, ifname: ifname.trim() };
}

// The reference host-local's directory layout, so a node can switch plugins without
// losing allocations: <dataDir>/<network>/<ip>, last_reserved_ip.<n>, lock.
// Reservations are created with link(2), which fails if the name exists: that keeps
// us and the reference plugin (which locks with flock, not with our lock) from
// claiming one address twice, and a record is never seen half-written.
export class DiskStore implements Store {
  readonly directory: string;
  // The owner record of the current allocation, written once and linked to each
  // candidate address in turn.
  private pendingRecord: { path: string; content: string } | undefined;

  constructor(dataDir: string, network: string) {
    this.directory = join(dataDir, network);
  }

  async withLock<T>(work: () => T | Promise<T>): Promise<T> {
    return withDirectoryLock(this.directory, join(this.directory, 'trestle.lock'), async () => {
      try {
        return await work();
      } finally {
        this.dropPendingRecord();
      }
    });
  }

  private dropPendingRecord(): void {
    if (this.pendingRecord) removeFile(this.pendingRecord.path);
    this.pendingRecord = undefined;
  }

  private recordFile(content: string): string {
    if (this.pendingRecord?.content !== content) {
      this.dropPendingRecord();
      const path = join(this.directory, `${temporaryPrefix}record.${process.pid}${temporarySuffix}`);
      writeFileSync(path, content, { mode: 0o644 });
      this.pendingRecord = { path, content };
    }
    return this.pendingRecord.path;
  }

  reserve(ip: string, containerId: string, ifname: string, rangeSetIndex: number): boolean {
    mkdirSync(this.directory, { recursive: true, mode: 0o755 });
    try {
      linkSync(this.recordFile(`${containerId}${lineBreak}${ifname}`), join(this.directory, ip));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    }
    known.get(this.directory)?.owners.set(ip, { ip, containerId, ifname });
    // Overwritten in place: it only says where the next search starts, and a
    // half-written one reads as no address (the search starts at the range's
    // beginning) or as another address (it starts there): either is correct. A
    // temporary file and a rename cost ~0.3 ms more on this kind of disk.
    overwriteInPlace(join(this.directory, `${lastReservedPrefix}${rangeSetIndex}`), ip);
    return true;
  }

  lastReserved(rangeSetIndex: number): string | undefined {
    try {
      return readFileSync(join(this.directory, `${lastReservedPrefix}${rangeSetIndex}`), 'utf8').trim();
    } catch {
      return undefined;
    }
  }

  private names(): string[] {
    try {
      return readdirSync(this.directory);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  private reservationNames(): Set<string> {
    return new Set(this.names().filter((name) => reservationName.test(name)));
  }

  // The reservation names now, from the watch's events when there is one; owners
  // whose name changed are forgotten (a name can be replaced by a rename).
  private currentNames(entry: KnownDirectory): Set<string> {
    if (watching && !entry.watch) {
      entry.watch = DirectoryWatch.open(this.directory);
      entry.names = undefined;
    }
    if (!entry.watch) {
      const names = this.reservationNames();
      for (const name of entry.owners.keys()) if (!names.has(name)) entry.owners.delete(name);
      return names;
    }
    const seen = entry.watch.changes();
    if (seen.ended) {
      entry.watch.close();
      entry.watch = undefined;
      entry.owners.clear();
      return this.currentNames(entry);
    }
    if (entry.names === undefined || seen.lost) {
      entry.names = this.reservationNames();
      entry.owners.clear();
      return entry.names;
    }
    for (const { name, present } of seen.changes) {
      entry.owners.delete(name);
      if (!present) entry.names.delete(name);
      else if (reservationName.test(name)) entry.names.add(name);
    }
    return entry.names;
  }

  heldBy(containerId: string, ifname: string): Reservation[] {
    const entry = knownDirectory(this.directory);
    const seen = entry.owners;
    const names = this.currentNames(entry);
    const held: Reservation[] = [];
    for (const name of names) {
      const owner = seen.get(name);
      if (owner !== undefined && !ownedBy(owner, containerId, ifname)) continue;
      const reservation = this.get(name);
      if (!reservation) {
        seen.delete(name);
        continue;
      }
      seen.set(name, reservation);
      if (ownedBy(reservation, containerId, ifname)) held.push(reservation);
    }
    return held;
  }

  list(): Reservation[] {
    const reservations: Reservation[] = [];
    for (const name of this.names()) {
      const reservation = this.get(name);
      if (reservation) reservations.push(reservation);
    }
    return reservations;
  }

  get(ip: string): Reservation | undefined {
    if (!reservationName.test(ip)) return undefined;
    const content = this.readRecord(ip);
    if (content === undefined) return undefined;
    const record = parseRecord(content);
    return typeof record === 'object' ? { ip, ...record } : undefined;
  }

  // One read into a shared buffer, and no path.join: in a fresh process readFileSync's
  // extra fstat and join's normalizing were half the cost of a scan.
  private readRecord(name: string): string | undefined {
    let fd: number;
    try {
      fd = openSync(`${this.directory}/${name}`, 'r');
    } catch {
      return undefined;
    }
    try {
      return recordBuffer.toString('utf8', 0, readSync(fd, recordBuffer, 0, recordBuffer.length, 0));
    } catch {
      return undefined;
    } finally {
      closeSync(fd);
    }
  }

  release(ip: string): void {
    known.get(this.directory)?.owners.delete(ip);
    removeFile(join(this.directory, ip));
  }

  // Entries no owner can release (see Store.removeDebris), by name.
  findDebris(graceMs: number): string[] {
    const found: string[] = [];
    for (const name of this.names()) {
      const temporary = name.startsWith(temporaryPrefix) && name.endsWith(temporarySuffix);
      if (!temporary) {
        if (!reservationName.test(name)) continue;
        const content = this.readRecord(name);
        // A directory or a file we cannot open is not ours to judge.
        if (content === undefined || typeof parseRecord(content) === 'object') continue;
      }
      if (olderThan(join(this.directory, name), graceMs)) found.push(name);
    }
    return found;
  }

  removeDebris(graceMs: number): string[] {
    const removed: string[] = [];
    for (const name of this.findDebris(graceMs)) {
      try {
        unlinkSync(join(this.directory, name));
        removed.push(name);
      } catch {
        // Gone meanwhile, or not a file.
      }
    }
    return removed;
  }

  probeWritable(): void {
    mkdirSync(this.directory, { recursive: true, mode: 0o755 });
    const probe = join(this.directory, `${temporaryPrefix}status.${process.pid}${temporarySuffix}`);
    writeFileSync(probe, '');
    unlinkSync(probe);
  }
}
