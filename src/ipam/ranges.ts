import { goField } from '../cni/config.js';
import { CniError, ErrorCode } from '../cni/errors.js';
import { formatAddress, formatPrefix, lastAddress, parseAddress, parsePrefix, prefixContains, type Address, type Prefix } from '../util/ip.js';
import { quote } from '../util/quote.js';

// One allocation range inside a subnet, after defaults are filled in as the
// reference host-local does: gateway = first address, start = first address,
// end = last address (minus the broadcast address for IPv4).
export interface Range {
  subnet: Prefix;
  start: bigint;
  end: bigint;
  gateway?: Address;
}

export type RangeSet = Range[];

function invalid(message: string): CniError {
  return new CniError(ErrorCode.InvalidConfig, message);
}

function optionalAddress(raw: Record<string, unknown>, key: string, where: string): Address | undefined {
  const value = goField(raw, key);
  if (value === undefined || value === null || value === '') return undefined;
  const address = typeof value === 'string' ? parseAddress(value) : undefined;
  if (!address) throw invalid(`${where}: "${key}" is not an IP address: ${quote(value)}`);
  return address;
}

// Address blocks no container network may take: their addresses mean something to
// every host (loopback, "any", multicast groups), and the kernel treats them
// specially (a 224.0.0.0/24 "gateway" cannot be assigned as a unicast address).
const reservedBlocks: Array<[string, string]> = [
  ['127.0.0.0/8', 'loopback'],
  ['224.0.0.0/4', 'multicast'],
  ['::1/128', 'loopback'],
  ['ff00::/8', 'multicast'],
];
// Parsed once: every ADD and DEL reads its ranges again.
const reservedPrefixes = reservedBlocks.map(([text, kind]) => ({ text, kind, block: parsePrefix(text) as Prefix }));

function overlapsPrefix(a: Prefix, b: Prefix): boolean {
  const shorter = a.length <= b.length ? a : b;
  const longer = shorter === a ? b : a;
  return a.family === b.family && prefixContains(shorter, { family: longer.family, value: longer.network });
}

function reservedBlockProblem(subnet: Prefix): string | undefined {
  if (subnet.network === 0n) return `contains the unspecified address ${formatAddress({ family: subnet.family, value: 0n })}`;
  for (const { text, kind, block } of reservedPrefixes) {
    if (overlapsPrefix(subnet, block)) return `overlaps the ${kind} block ${text}`;
  }
  return undefined;
}

export function parseRange(raw: unknown, where: string): Range {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid(`${where} must be an object`);
  const fields = raw as Record<string, unknown>;
  const subnetText = goField(fields, 'subnet');
  const subnet = typeof subnetText === 'string' ? parsePrefix(subnetText) : undefined;
  if (!subnet) throw invalid(`${where}: "subnet" must be a CIDR such as 10.22.0.0/16, got ${quote(subnetText)}`);
  const bits = subnet.family === 4 ? 32 : 128;
  if (subnet.length > bits - 2) throw invalid(`${where}: network ${formatPrefix(subnet)} is too small to allocate from`);
  if (subnet.address !== subnet.network) {
    throw invalid(`${where}: subnet ${formatPrefix(subnet, true)} has host bits set; the network address is ${formatPrefix(subnet)}`);
  }
  const reserved = reservedBlockProblem(subnet);
  if (reserved !== undefined) throw invalid(`${where}: subnet ${formatPrefix(subnet)} ${reserved}`);
  const inSubnet = (address: Address | undefined, key: string): Address | undefined => {
    if (address && !prefixContains(subnet, address)) throw invalid(`${where}: ${key} ${formatAddress(address)} is not in subnet ${formatPrefix(subnet)}`);
    return address;
  };
  const gateway = inSubnet(optionalAddress(fields, 'gateway', where), 'gateway') ?? { family: subnet.family, value: subnet.network + 1n };
  const start = inSubnet(optionalAddress(fields, 'rangeStart', where), 'rangeStart')?.value ?? subnet.network + 1n;
  const end = inSubnet(optionalAddress(fields, 'rangeEnd', where), 'rangeEnd')?.value ?? lastAddress(subnet) - (subnet.family === 4 ? 1n : 0n);
  if (start > end) throw invalid(`${where}: rangeStart is after rangeEnd`);
  return { subnet, start, end, gateway };
}

function overlaps(a: Range, b: Range): boolean {
  return a.subnet.family === b.subnet.family && a.start <= b.end && b.start <= a.end;
}

// An attachment takes one address per range set, and every pair of ranges is checked
// for overlap: far more than any network uses, few enough to answer in milliseconds.
const maxRangeSets = 64;
const maxRanges = 256;

export function parseRangeSets(raw: unknown, where: string): RangeSet[] {
  if (!Array.isArray(raw) || raw.length === 0) throw invalid(`${where} must be a non-empty list of range sets`);
  if (raw.length > maxRangeSets) throw invalid(`${where} has ${raw.length} range sets: at most ${maxRangeSets} are allowed`);
  const rangeCount = raw.reduce((count: number, set: unknown) => count + (Array.isArray(set) ? set.length : 0), 0);
  if (rangeCount > maxRanges) throw invalid(`${where} has ${rangeCount} ranges: at most ${maxRanges} are allowed`);
  const sets = raw.map((set, i) => {
    if (!Array.isArray(set) || set.length === 0) throw invalid(`${where}[${i}] must be a non-empty list of ranges`);
    const ranges = set.map((range, j) => parseRange(range, `${where}[${i}][${j}]`));
    if (ranges.some((range) => range.subnet.family !== ranges[0]?.subnet.family)) throw invalid(`${where}[${i}] mixes IPv4 and IPv6 ranges`);
    return ranges;
  });
  const all = sets.flat();
  for (let i = 0; i < all.length; i++) {
    for (let j = i + 1; j < all.length; j++) {
      if (overlaps(all[i] as Range, all[j] as Range)) throw invalid(`${where}: ranges ${describeRange(all[i] as Range)} and ${describeRange(all[j] as Range)} overlap`);
    }
  }
  return sets;
}

export function rangeContains(range: Range, address: Address): boolean {
  return address.family === range.subnet.family && address.value >= range.start && address.value <= range.end;
}

export function describeRange(range: Range): string {
  const family = range.subnet.family;
  return `${formatAddress({ family, value: range.start })}-${formatAddress({ family, value: range.end })}`;
}

export function describeRangeSet(set: RangeSet): string {
  return set.map(describeRange).join(',');
}
