import { mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { digest } from '../util/digest.js';
import { removeFile } from '../util/files.js';
import { formatAddress, parseAddress, parsePrefix, familyBits } from '../util/ip.js';
import { isRuleElement, type RuleElement } from './state.js';

// Which attachments own each element of the shared sets and maps. Two attachments
// can need the same element (one container address in two networks, a stale record
// beside a live one), so an element leaves the kernel only with its last owner. One
// directory per element key, one marker file per owner in it: an ADD or DEL costs a
// few file operations per element of its own, whatever the number of containers.
// Callers hold the firewall lock.
//
// Layout: <firewall dir>/elements/<digest of set|key>/<owner id>, each marker holding
// the element and the owner's record file (relative to the firewall dir), so that
// the index can be checked against the records and the kernel.
export interface Marker {
  owner: string;
  element: RuleElement;
}

// One spelling per key, whichever wrote it: nft prints a full-length prefix as a
// plain address, and addresses in canonical form.
export function canonicalKey(key: string): string {
  return key
    .split(' . ')
    .map((part) => {
      const prefix = parsePrefix(part);
      if (prefix) return prefix.length === familyBits(prefix.family) ? formatAddress({ family: prefix.family, value: prefix.network }) : `${formatAddress({ family: prefix.family, value: prefix.network })}/${prefix.length}`;
      const address = parseAddress(part);
      return address ? formatAddress(address) : part;
    })
    .join(' . ');
}

export class OwnerIndex {
  private readonly root: string;

  constructor(firewallDir: string) {
    this.root = join(firewallDir, 'elements');
  }

  private keyDir(set: string, key: string): string {
    return join(this.root, digest(`${set}|${canonicalKey(key)}`));
  }

  // `owner` is the record file's path relative to the firewall dir; its digest
  // names the marker.
  claim(owner: string, elements: readonly RuleElement[]): void {
    const marker = digest(owner);
    for (const element of elements) {
      const dir = this.keyDir(element.set, element.key);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeFileSync(join(dir, marker), JSON.stringify({ owner, element }));
    }
  }

  // Drops the owner's markers; returns the elements nobody owns any more. A key's
  // directory goes with its last marker (rmdir fails while another owner's is in
  // it): a DEL killed before the kernel lets go of the element finds it unowned all
  // the same, and so does GC.
  release(owner: string, elements: readonly RuleElement[]): RuleElement[] {
    const marker = digest(owner);
    const orphaned: RuleElement[] = [];
    for (const element of elements) {
      const dir = this.keyDir(element.set, element.key);
      removeFile(join(dir, marker));
      try {
        rmdirSync(dir);
        orphaned.push(element);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') orphaned.push(element);
        else if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
      }
    }
    return orphaned;
  }

  // Whether an owner other than `owner` holds the element.
  heldByOthers(owner: string, element: RuleElement): boolean {
    const marker = digest(owner);
    return this.ownersIn(this.keyDir(element.set, element.key)).some((name) => name !== marker);
  }

  isOwned(set: string, key: string): boolean {
    return this.ownersIn(this.keyDir(set, key)).length > 0;
  }

  private ownersIn(dir: string): string[] {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  }

  // Every marker, for checking the index against the records (GC, and DEL of an
  // owner whose record is unreadable). A damaged marker reads as undefined.
  *markers(): Generator<{ path: string; marker: Marker | undefined }> {
    for (const key of this.ownersIn(this.root)) {
      for (const name of this.ownersIn(join(this.root, key))) {
        const path = join(this.root, key, name);
        yield { path, marker: readMarker(path) };
      }
    }
  }

  removeMarker(path: string): void {
    removeFile(path);
  }

  pruneEmpty(): void {
    for (const key of this.ownersIn(this.root)) {
      try {
        rmdirSync(join(this.root, key));
      } catch {
        // Not empty.
      }
    }
  }
}

function readMarker(path: string): Marker | undefined {
  try {
    const value = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    if (typeof value['owner'] !== 'string' || !isRuleElement(value['element'])) return undefined;
    return { owner: value['owner'], element: value['element'] };
  } catch {
    return undefined;
  }
}
