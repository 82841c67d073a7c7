import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { parseAddress } from '../util/ip.js';
import type { Reservation, Store } from './store.js';

const lastReservedPrefix = 'last_reserved_ip.';
// The reference host-local writes "<containerID>\r\n<ifname>".
const lineBreak = '\r\n';

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
      if (!parseAddress(name)) continue;
      let content: string;
      try {
        content = readFileSync(join(this.directory, name), 'utf8');
      } catch {
        continue;
      }
      const [containerId = '', ifname = ''] = content.trim().split(/\r?\n/);
      reservations.push({ ip: name, containerId: containerId.trim(), ifname: ifname.trim() });
    }
    return reservations;
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
