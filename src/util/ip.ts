import ipaddr from 'ipaddr.js';

export type Family = 4 | 6;

export interface Address {
  family: Family;
  value: bigint;
}

export interface Prefix {
  family: Family;
  // The network address (host bits cleared unless `address` keeps them).
  network: bigint;
  // The address as written, which may carry host bits (e.g. 10.0.0.5/24).
  address: bigint;
  length: number;
}

export function familyBits(family: Family): number {
  return family === 4 ? 32 : 128;
}

// An address from its 4 or 16 bytes in network order (as the kernel and ipaddr.js give them).
export function addressFromBytes(bytes: ArrayLike<number>): Address {
  let value = 0n;
  for (let i = 0; i < bytes.length; i++) value = (value << 8n) | BigInt(bytes[i] as number);
  return { family: bytes.length === 4 ? 4 : 6, value };
}

// The address's 4 or 16 bytes in network order.
export function addressToBytes(address: Address): Buffer {
  const bytes = Buffer.alloc(familyBits(address.family) / 8);
  let value = address.value;
  for (let i = bytes.length - 1; i >= 0; i--) {
    bytes[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return bytes;
}

function fromParsed(parsed: ipaddr.IPv4 | ipaddr.IPv6): Address {
  return addressFromBytes(parsed.toByteArray());
}

// IPv4 is written as four decimal bytes without leading zeros, as Go's net.ParseIP
// takes it: ipaddr.js would also take "10" or "0x0a000001", which no reference plugin
// reads as an address. Read here directly, where ipaddr.js tries each of its notations
// in turn (~20 µs).
const dottedQuad = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;

// Returns undefined for anything that is not a plain IPv4 or IPv6 address; IPv4-mapped
// IPv6 addresses become IPv4, as the reference plugins canonicalize them.
export function parseAddress(text: string): Address | undefined {
  if (typeof text !== 'string') return undefined;
  if (!text.includes(':')) {
    const quad = dottedQuad.exec(text);
    if (!quad) return undefined;
    const [a, b, c, d] = [Number(quad[1]), Number(quad[2]), Number(quad[3]), Number(quad[4])];
    if (a > 255 || b > 255 || c > 255 || d > 255) return undefined;
    return { family: 4, value: BigInt(((a << 24) | (b << 16) | (c << 8) | d) >>> 0) };
  }
  if (!ipaddr.isValid(text) || text.includes('%')) return undefined;
  return fromParsed(ipaddr.process(text));
}

export function parsePrefix(text: string): Prefix | undefined {
  if (typeof text !== 'string') return undefined;
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const address = parseAddress(text.slice(0, slash));
  const lengthText = text.slice(slash + 1);
  if (!address || !/^\d{1,3}$/.test(lengthText)) return undefined;
  const length = Number(lengthText);
  if (length > familyBits(address.family)) return undefined;
  return { family: address.family, address: address.value, network: address.value & netmask(address.family, length), length };
}

export function netmask(family: Family, length: number): bigint {
  const bits = BigInt(familyBits(family));
  const all = (1n << bits) - 1n;
  return (all >> BigInt(length)) ^ all;
}

export function lastAddress(prefix: Prefix): bigint {
  return prefix.network | ((1n << BigInt(familyBits(prefix.family) - prefix.length)) - 1n);
}

export function prefixContains(prefix: Prefix, address: Address): boolean {
  return prefix.family === address.family && (address.value & netmask(prefix.family, prefix.length)) === prefix.network;
}

export function formatAddress(address: Address): string {
  const bytes = [...addressToBytes(address)];
  // RFC 5952 form: the same text Go's net.IP.String() gives, which matters because
  // host-local's store uses it as the file name.
  return address.family === 4 ? new ipaddr.IPv4(bytes).toString() : new ipaddr.IPv6(bytes).toRFC5952String();
}

export function formatPrefix(prefix: Prefix, withHostBits = false): string {
  return `${formatAddress({ family: prefix.family, value: withHostBits ? prefix.address : prefix.network })}/${prefix.length}`;
}

export function formatCidr(address: Address, length: number): string {
  return `${formatAddress(address)}/${length}`;
}
