import { inotify, libc } from './libc.js';

// inotify(7), for a long-lived process that must know a directory's entries without
// reading them all again: reading a directory of 1,000 entries cost ~0.45 ms here
// (ext4 hashes and sorts every entry on each read), on every call that looks.

const IN_NONBLOCK = 0x800;
const IN_CLOEXEC = 0x80000;
const IN_MOVED_FROM = 0x40;
const IN_MOVED_TO = 0x80;
const IN_CREATE = 0x100;
const IN_DELETE = 0x200;
const IN_DELETE_SELF = 0x400;
const IN_MOVE_SELF = 0x800;
const IN_Q_OVERFLOW = 0x4000;
const IN_IGNORED = 0x8000;
const IN_ONLYDIR = 0x1000000;
const EAGAIN = 11;
const EINTR = 4;
const eventHeader = 16;

// A name that appeared in the directory (created, linked, moved in) or left it.
export interface NameChange {
  name: string;
  present: boolean;
}

// What changed since the last look. `lost`: events were dropped (the kernel's queue
// overflowed) or the directory itself was removed or moved: the entries must be read
// again, and this watch is no longer usable once `ended`.
export interface DirectoryChanges {
  changes: NameChange[];
  lost: boolean;
  ended: boolean;
}

interface Binding {
  addWatch(path: string, mask: number): number;
  removeWatch(wd: number): void;
  read(buffer: Buffer): number;
  errno(): number;
}

// One inotify instance for the whole process (the kernel allows 128 per user), its
// events handed to each watch by watch descriptor. The kernel gives one directory
// the same descriptor however often (and by whatever path) it is watched: each watch
// of it keeps its own list.
let binding: Binding | undefined | null;
const pending = new Map<number, Set<DirectoryChanges>>();
const readBuffer = Buffer.alloc(64 * 1024);

function bind(): Binding | undefined {
  if (binding !== undefined) return binding ?? undefined;
  try {
    const calls = inotify();
    const fd = calls.init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) throw new Error('inotify_init1 failed');
    const { errno } = libc();
    binding = {
      addWatch: (path, mask) => calls.addWatch(fd, path, mask),
      removeWatch: (wd) => void calls.removeWatch(fd, wd),
      read: (buffer) => calls.read(fd, buffer, buffer.length),
      errno,
    };
  } catch {
    // No FFI or no inotify (limits reached): callers read the directory instead.
    binding = null;
  }
  return binding ?? undefined;
}

// A watch nobody looks at any more (a store no call uses now) would keep every later
// change of its directory: past this many it is told to read the directory again.
const maxKept = 10_000;

// A name change for each watch of `wd`. Once a watch has lost events it reads the
// directory again anyway, so it keeps no more of them.
function record(wd: number, change: NameChange): void {
  for (const entry of pending.get(wd) ?? []) {
    if (entry.lost) continue;
    if (entry.changes.length >= maxKept) {
      entry.changes.length = 0;
      entry.lost = true;
      continue;
    }
    entry.changes.push(change);
  }
}

function loseAll(): void {
  for (const entries of pending.values()) for (const entry of entries) entry.lost = true;
}

// Everything the kernel has queued, sorted to the watches. An overflow loses events
// of every watch.
function drain(events: Binding): void {
  for (;;) {
    const length = events.read(readBuffer);
    if (length < 0) {
      const errno = events.errno();
      if (errno === EINTR) continue;
      if (errno === EAGAIN) return;
      loseAll();
      return;
    }
    if (length === 0) return;
    for (let offset = 0; offset + eventHeader <= length; ) {
      const wd = readBuffer.readInt32LE(offset);
      const mask = readBuffer.readUInt32LE(offset + 4);
      const nameLength = readBuffer.readUInt32LE(offset + 12);
      const nameEnd = readBuffer.indexOf(0, offset + eventHeader);
      const name = readBuffer.toString('utf8', offset + eventHeader, nameEnd < 0 || nameEnd > offset + eventHeader + nameLength ? offset + eventHeader + nameLength : nameEnd);
      offset += eventHeader + nameLength;
      if ((mask & IN_Q_OVERFLOW) !== 0) {
        loseAll();
      } else if ((mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) !== 0) {
        for (const entry of pending.get(wd) ?? []) {
          entry.lost = true;
          entry.ended = true;
        }
      } else if ((mask & (IN_CREATE | IN_MOVED_TO)) !== 0) {
        record(wd, { name, present: true });
      } else if ((mask & (IN_DELETE | IN_MOVED_FROM)) !== 0) {
        record(wd, { name, present: false });
      }
    }
  }
}

// Names entering and leaving one directory, from the moment the watch was opened:
// open it first, then read the directory, then apply every later changes() in order
// (an event for a change the read already saw sets the same state again).
export class DirectoryWatch {
  private entry: DirectoryChanges = { changes: [], lost: false, ended: false };

  private constructor(
    private readonly events: Binding,
    private readonly wd: number,
  ) {
    const entries = pending.get(wd) ?? new Set<DirectoryChanges>();
    entries.add(this.entry);
    pending.set(wd, entries);
  }

  // Undefined when the directory cannot be watched (missing, no inotify, limits).
  static open(path: string): DirectoryWatch | undefined {
    const events = bind();
    if (!events) return undefined;
    const wd = events.addWatch(path, IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
    if (wd < 0) return undefined;
    return new DirectoryWatch(events, wd);
  }

  changes(): DirectoryChanges {
    drain(this.events);
    const seen = this.entry;
    if (!seen.ended) {
      const entries = pending.get(this.wd);
      entries?.delete(seen);
      this.entry = { changes: [], lost: false, ended: false };
      entries?.add(this.entry);
    }
    return seen;
  }

  close(): void {
    const entries = pending.get(this.wd);
    entries?.delete(this.entry);
    this.entry.ended = true;
    if (entries?.size === 0) {
      pending.delete(this.wd);
      this.events.removeWatch(this.wd);
    }
  }
}
