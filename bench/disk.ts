import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { log } from './log.js';

// Where the sandboxes put their files (the IPAM stores above all), as a production
// node's /var/lib is: a journaled ext4. These machines' root file system is an ext4
// without a journal, and there the kernel will not reuse an inode freed in the last
// minutes: every file created scans past each one (ext4's recently_deleted), so each
// IPAM reservation cost more the more files the run had deleted just before (another
// implementation's node removed, the previous windows' DELs), whatever the
// implementation. A loop-mounted image with a journal has no such scan.
export interface BenchDisk {
  // What the report says of it.
  description: string;
  release(): Promise<void>;
}

const sizeBytes = 2 * 1024 * 1024 * 1024;

export async function prepareDisk(): Promise<BenchDisk> {
  const work = mkdtempSync(join(tmpdir(), 'trestle-bench-disk-'));
  const image = join(work, 'disk.img');
  const mountPoint = join(work, 'mnt');
  let mounted = false;
  const release = async () => {
    if (mounted) {
      try {
        await execa('umount', [mountPoint]);
      } catch (error) {
        // Still in use: removing the directory would empty the mounted file system.
        log(`cannot unmount ${mountPoint} (${(error as Error).message.split('\n')[0]}): left for \`umount ${mountPoint}\` and \`rm -r ${work}\``);
        return;
      }
      mounted = false;
    }
    rmSync(work, { recursive: true, force: true });
  };
  try {
    await execa('truncate', ['-s', String(sizeBytes), image]);
    // Inode tables and journal written now, not by a kernel thread during the run.
    await execa('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', image]);
    mkdirSync(mountPoint, { mode: 0o700 });
    await execa('mount', ['-o', 'loop', image, mountPoint]);
    mounted = true;
    process.env['TMPDIR'] = mountPoint;
    return { description: 'sandbox files (IPAM stores, daemon logs) on a journaled ext4 (a 2 GB loop-mounted image), as a node\'s /var/lib', release };
  } catch (error) {
    await release();
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    log(`no journaled disk for the sandboxes (${reason}): they stay in ${tmpdir()}`);
    return { description: `sandbox files (IPAM stores, daemon logs) in ${tmpdir()}: no loop-mounted journaled ext4 could be made (${reason})`, release: async () => undefined };
  }
}
