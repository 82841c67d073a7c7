import { closeSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import type { Reservation, Store } from './store.js';

const lastReservedPrefix = 'last_reserved_ip.';
// The reference host-local writes "<containerID>\r\n<ifname>".
const lineBreak = '\r\n';
// Reservation files are named by an address as Go prints it (dotted IPv4, or IPv6 in
// RFC 5952 form, never dotted); lock, last_reserved_ip.<n> and our lock directory are
// not. Every ADD and DEL scans the whole directory, so the names are told apart by
// their shape: parsing each one as an address cost ~10 ms per 1,000 reservations.
const reservationName = /^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7})$/i;
// An owner record is at most 255 + 2 + 15 bytes; anything longer is not one.
const recordBuffer = Buffer.alloc(1024);

// The reference host-local's directory layout, so a node can switch plugins without
// losing allocations: <dataDir>/<network>/<ip>, last_reserved_ip.<n>, lock.
// Reservations are created with O_EXCL, which is what keeps us and the reference
// plugin (which locks with flock, not with our lock) from claiming one address twice.
export class DiskStore implements Store {
  readonly directory: string;

  constructor(dataDir: string, network: string) {
    this.directory = join(dataDir, network);
  }

  async withLock<T>(work: () => T | Promise<T>): Promise<T> {
    mkdirSync(this.directory, { recursive: true, mode: 0o755 });
    const release = await lockfile.lock(this.directory, {
      lockfilePath: join(this.directory, 'trestle.lock'),
      realpath: false,
      stale: 10_000,
      retries: { retries: 400, minTimeout: 2, maxTimeout: 25, factor: 1.3, randomize: true },
    });
    try {
      return await work();
    } finally {
      await release();
    }
  }

  reserve(ip: string, containerId: string, ifname: string, rangeSetIndex: number): boolean {
    let fd: number;
    try {
      fd = openSync(join(this.directory, ip), 'wx', 0o644);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    }
    try {
      writeSync(fd, `${containerId}${lineBreak}${ifname}`);
    } catch (error) {
      closeSync(fd);
      unlinkSync(join(this.directory, ip));
      throw error;
    }
    closeSync(fd);
    writeFileSync(join(this.directory, `${lastReservedPrefix}${rangeSetIndex}`), ip);
    return true;
  }

  lastReserved(rangeSetIndex: number): string | undefined {
    try {
      return readFileSync(join(this.directory, `${lastReservedPrefix}${rangeSetIndex}`), 'utf8').trim();
    } catch {
      return undefined;
    }
  }

  list(): Reservation[] {
    let names: string[];
    try {
      names = readdirSync(this.directory);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const reservations: Reservation[] = [];
    for (const name of names) {
      if (!reservationName.test(name)) continue;
      const content = this.readRecord(name);
      if (content === undefined) continue;
      const [containerId = '', ifname = ''] = content.trim().split(/\r?\n/);
      reservations.push({ ip: name, containerId: containerId.trim(), ifname: ifname.trim() });
    }
    return reservations;
  }

  get(ip: string): Reservation | undefined {
    if (!reservationName.test(ip)) return undefined;
    const content = this.readRecord(ip);
    if (content === undefined) return undefined;
    const [containerId = '', ifname = ''] = content.trim().split(/\r?\n/);
    return { ip, containerId: containerId.trim(), ifname: ifname.trim() };
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
    rmSync(join(this.directory, ip), { force: true });
  }

  probeWritable(): void {
    mkdirSync(this.directory, { recursive: true, mode: 0o755 });
    const probe = join(this.directory, `.trestle-status-${process.pid}`);
    writeFileSync(probe, '');
    unlinkSync(probe);
  }
}
