import { parsePrefix, type Family } from '../util/ip.js';
import { HostError } from './errors.js';
import { attribute, decodeAttributes, decodeU32, Flags, nestedAttribute, u32Attribute } from './netlink/message.js';
import { AddressFamily, Rtm, addressBytes, addressHeader, familyCode, formatAddressBytes, routeHeader, withRouteSession, type RouteSession } from './netlink/route.js';
import type { LinkAddress } from './links.js';
import { Errno } from './netlink/errno.js';
import { lookup, type HostOperation } from './operations.js';

const addressAttribute = { address: 1, local: 2, broadcast: 4 } as const;
// Our addresses are unique by allocation; duplicate address detection would only
// keep an IPv6 address "tentative" (unusable) for a second or more.
const IFA_F_NODAD = 0x02;

function prefixOf(cidr: string): { family: Family; bytes: Buffer; length: number } {
  const prefix = parsePrefix(cidr);
  const slash = cidr.indexOf('/');
  if (!prefix || slash < 0) throw new HostError(`not an address with a prefix length: ${cidr}`, 'invalid address');
  return { ...addressBytes(cidr.slice(0, slash)), length: prefix.length };
}

// The IPv4 broadcast address of a subnet, which the reference plugin also sets (and
// docker0 has); none for /31 and /32, which have no broadcast.
function broadcastOf(bytes: Buffer, length: number): Buffer[] {
  if (bytes.length !== 4 || length >= 31) return [];
  const host = length === 0 ? 0xffffffff : (1 << (32 - length)) - 1;
  const broadcast = Buffer.alloc(4);
  broadcast.writeUInt32BE((bytes.readUInt32BE(0) | host) >>> 0, 0);
  return [attribute(addressAttribute.broadcast, broadcast)];
}

function addressMessage(session: RouteSession, cidr: string, device: string, flags: number): Buffer {
  const { family, bytes, length } = prefixOf(cidr);
  return Buffer.concat([
    addressHeader({ family: familyCode(family), prefixLength: length, flags, index: session.indexOf(device) }),
    attribute(addressAttribute.local, bytes),
    attribute(addressAttribute.address, bytes),
  ]);
}

export function replaceAddress(cidr: string, device: string, options: { noDad?: boolean } = {}): HostOperation {
  return {
    what: `add address ${cidr} to ${device}`,
    apply: (session) => {
      const { bytes, length } = prefixOf(cidr);
      const message = addressMessage(session, cidr, device, options.noDad && bytes.length === 16 ? IFA_F_NODAD : 0);
      session.socket.change(Rtm.newAddress, Flags.create | Flags.replace, Buffer.concat([message, ...broadcastOf(bytes, length)]));
    },
  };
}

// Tolerates an address or a device that is already gone.
export function deleteAddress(cidr: string, device: string): HostOperation {
  return {
    what: `remove address ${cidr} from ${device}`,
    tolerate: [Errno.addressNotAvailable, Errno.noDevice],
    apply: (session) => session.socket.change(Rtm.delAddress, 0, addressMessage(session, cidr, device, 0)),
  };
}

// The addresses of one interface (the kernel filters the dump by index).
export function listAddresses(session: RouteSession, index: number): LinkAddress[] {
  const addresses: LinkAddress[] = [];
  for (const message of session.socket.dump(Rtm.getAddress, addressHeader({ family: AddressFamily.unspec, index }))) {
    const family = message.payload.readUInt8(0);
    if (message.payload.readUInt32LE(4) !== index || (family !== AddressFamily.inet && family !== AddressFamily.inet6)) continue;
    const attributes = decodeAttributes(message.payload, 8);
    const bytes = attributes.get(addressAttribute.local) ?? attributes.get(addressAttribute.address);
    if (bytes === undefined) continue;
    addresses.push({ family: family === AddressFamily.inet ? 4 : 6, address: formatAddressBytes(bytes), prefixLength: message.payload.readUInt8(1) });
  }
  return addresses;
}

export interface RouteSpec {
  dst: string;
  gw?: string;
  device: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

const routeAttribute = { dst: 1, oif: 4, gateway: 5, priority: 6, metrics: 8, table: 15 } as const;
const metric = { mtu: 2, advmss: 8 } as const;
const mainTable = 254;
const bootProtocol = 3;
const unicast = 1;
const scopeLink = 253;

export function addRoute(route: RouteSpec): HostOperation {
  return {
    what: `add route ${route.dst}${route.gw ? ` via ${route.gw}` : ''} on ${route.device}`,
    apply: (session) => {
      const { family, bytes, length } = prefixOf(route.dst);
      const table = route.table ?? mainTable;
      // As `ip route add` does: an IPv4 route without a gateway reaches hosts on the
      // link itself.
      const scope = route.scope ?? (route.gw === undefined && family === 4 ? scopeLink : 0);
      const attributes: Buffer[] = [];
      if (length > 0) attributes.push(attribute(routeAttribute.dst, bytes));
      if (route.gw !== undefined) attributes.push(attribute(routeAttribute.gateway, addressBytes(route.gw).bytes));
      attributes.push(u32Attribute(routeAttribute.oif, session.indexOf(route.device)));
      if (route.priority !== undefined) attributes.push(u32Attribute(routeAttribute.priority, route.priority));
      if (table > 255) attributes.push(u32Attribute(routeAttribute.table, table));
      const metrics: Buffer[] = [];
      if (route.mtu !== undefined) metrics.push(u32Attribute(metric.mtu, route.mtu));
      if (route.advmss !== undefined) metrics.push(u32Attribute(metric.advmss, route.advmss));
      if (metrics.length > 0) attributes.push(nestedAttribute(routeAttribute.metrics, metrics));
      const header = routeHeader({ family: familyCode(family), dstLength: length, table: table > 255 ? 0 : table, protocol: bootProtocol, scope, type: unicast });
      session.socket.change(Rtm.newRoute, Flags.create | Flags.exclusive, Buffer.concat([header, ...attributes]));
    },
  };
}

export interface RouteEntry {
  dst: string;
  gateway?: string;
  dev?: string;
}

// The routes of the main table, both families.
export async function listRoutes(netns?: string): Promise<RouteEntry[]> {
  return withRouteSession(netns, (session) =>
    lookup('list routes', () => {
      const routes: RouteEntry[] = [];
      for (const family of [AddressFamily.inet, AddressFamily.inet6]) {
        for (const message of session.socket.dump(Rtm.getRoute, routeHeader({ family }))) {
          const attributes = decodeAttributes(message.payload, 12);
          const table = decodeU32(attributes.get(routeAttribute.table)) ?? message.payload.readUInt8(4);
          if (table !== mainTable || message.payload.readUInt8(7) !== unicast) continue;
          const length = message.payload.readUInt8(1);
          const dst = attributes.get(routeAttribute.dst);
          const route: RouteEntry = { dst: dst === undefined ? (family === AddressFamily.inet ? `0.0.0.0/${length}` : `::/${length}`) : `${formatAddressBytes(dst)}/${length}` };
          const gateway = attributes.get(routeAttribute.gateway);
          if (gateway !== undefined) route.gateway = formatAddressBytes(gateway);
          const oif = decodeU32(attributes.get(routeAttribute.oif));
          const dev = oif === undefined ? undefined : session.nameOf(oif);
          if (dev !== undefined) route.dev = dev;
          routes.push(route);
        }
      }
      return routes;
    }) ?? [],
  );
}
