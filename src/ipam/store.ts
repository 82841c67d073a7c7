// What the allocator needs from persistence; the disk store is one implementation.
export interface Reservation {
  ip: string;
  containerId: string;
  ifname: string;
}

export interface Store {
  // Runs `work` while holding the store's lock, so that no two processes of ours
  // allocate at the same time.
  withLock<T>(work: () => T | Promise<T>): Promise<T>;
  // Atomically claims `ip`, record and all; false when it is already taken.
  reserve(ip: string, containerId: string, ifname: string, rangeSetIndex: number): boolean;
  lastReserved(rangeSetIndex: number): string | undefined;
  list(): Reservation[];
  // The reservations of one owner (a repeated ADD's), without reading every record
  // again in a process that has read them before.
  heldBy(containerId: string, ifname: string): Reservation[];
  // One reservation by address, without scanning the store.
  get(ip: string): Reservation | undefined;
  release(ip: string): void;
  // Entries no owner can ever release, untouched for `graceMs`: reservations that are
  // empty or unreadable (a writer killed half-way), and temporary files. Returns
  // what it removed.
  removeDebris(graceMs: number): string[];
  // Fails when the store cannot be written (STATUS).
  probeWritable(): void;
}

export function ownedBy(reservation: Reservation, containerId: string, ifname: string): boolean {
  // Entries written by old host-local versions hold only the container ID.
  return reservation.containerId === containerId && (reservation.ifname === ifname || reservation.ifname === '');
}
