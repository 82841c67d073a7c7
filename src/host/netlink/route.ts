import { addressFromBytes, addressToBytes, formatAddress, parseAddress, type Family } from '../../util/ip.js';
import { HostError } from '../errors.js';
import { decodeAttributes, decodeString, stringAttribute } from './message.js';
import { Errno } from './errno.js';
import { NetlinkError, NetlinkSocket } from './socket.js';

// rtnetlink(7): the message types and family headers of links, addresses and routes.
const NETLINK_ROUTE = 0;

export const Rtm = {
  newLink: 16,
  delLink: 17,
  getLink: 18,
  newAddress: 20,
  delAddress: 21,
  getAddress: 22,
  newRoute: 24,
  getRoute: 26,
} as const;

export const AddressFamily = { unspec: 0, inet: 2, inet6: 10 } as const;

export const LinkAttribute = {
  address: 1,
  name: 3,
  mtu: 4,
  master: 10,
  linkInfo: 18,
  alias: 20,
  afSpec: 26,
  netnsFd: 28,
  numTxQueues: 31,
  numRxQueues: 32,
} as const;

export const LinkInfo = { kind: 1, data: 2, slaveKind: 4, slaveData: 5 } as const;

export function familyCode(family: Family): number {
  return family === 4 ? AddressFamily.inet : AddressFamily.inet6;
}

// struct ifinfomsg
export function linkHeader(fields: { index?: number; flags?: number; change?: number } = {}): Buffer {
  const header = Buffer.alloc(16);
  header.writeInt32LE(fields.index ?? 0, 4);
  header.writeUInt32LE(fields.flags ?? 0, 8);
  header.writeUInt32LE(fields.change ?? 0, 12);
  return header;
}

// struct ifaddrmsg
export function addressHeader(fields: { family: number; prefixLength?: number; flags?: number; scope?: number; index?: number }): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt8(fields.family, 0);
  header.writeUInt8(fields.prefixLength ?? 0, 1);
  header.writeUInt8(fields.flags ?? 0, 2);
  header.writeUInt8(fields.scope ?? 0, 3);
  header.writeUInt32LE(fields.index ?? 0, 4);
  return header;
}

// struct rtmsg
export function routeHeader(fields: { family: number; dstLength?: number; table?: number; protocol?: number; scope?: number; type?: number }): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt8(fields.family, 0);
  header.writeUInt8(fields.dstLength ?? 0, 1);
  header.writeUInt8(fields.table ?? 0, 4);
  header.writeUInt8(fields.protocol ?? 0, 5);
  header.writeUInt8(fields.scope ?? 0, 6);
  header.writeUInt8(fields.type ?? 0, 7);
  return header;
}

// An address as the kernel takes it: 4 or 16 bytes, network order.
export function addressBytes(text: string): { family: Family; bytes: Buffer } {
  const address = parseAddress(text);
  if (!address) throw new HostError(`not an IP address: ${text}`, 'invalid address');
  return { family: address.family, bytes: addressToBytes(address) };
}

// The text form `ip` prints: dotted quad, or IPv6 in RFC 5952 form.
export function formatAddressBytes(bytes: Buffer): string {
  return formatAddress(addressFromBytes(bytes));
}

// A link named in a request (the kernel resolves IFLA_IFNAME when the index is 0).
export function linkByName(name: string, header: Buffer = linkHeader()): Buffer {
  return Buffer.concat([header, stringAttribute(LinkAttribute.name, name)]);
}

// A NETLINK_ROUTE socket in one namespace, with the interface indexes it has looked up.
export class RouteSession {
  private readonly indexes = new Map<string, number>();

  // netns: the namespace the socket was opened in, when not this process's.
  private constructor(
    readonly socket: NetlinkSocket,
    readonly netns: string | undefined,
  ) {}

  static open(netns?: string): RouteSession {
    return new RouteSession(NetlinkSocket.open(NETLINK_ROUTE, netns), netns);
  }

  close(): void {
    this.socket.close();
  }

  // The index of the named interface; the kernel's "No such device" when there is none.
  indexOf(name: string): number {
    const known = this.indexes.get(name);
    if (known !== undefined) return known;
    const reply = this.socket.get(Rtm.getLink, linkByName(name));
    const index = reply.payload.readInt32LE(4);
    this.indexes.set(name, index);
    return index;
  }

  // The name of an interface index; undefined when it is gone.
  nameOf(index: number): string | undefined {
    for (const [name, known] of this.indexes) if (known === index) return name;
    let reply;
    try {
      reply = this.socket.get(Rtm.getLink, linkHeader({ index }));
    } catch (error) {
      if (error instanceof NetlinkError && error.errno === Errno.noDevice) return undefined;
      throw error;
    }
    const name = decodeString(decodeAttributes(reply.payload, 16).get(LinkAttribute.name));
    if (name !== undefined) this.indexes.set(name, index);
    return name;
  }

  // Names change meaning when links are created or deleted in the same batch.
  forget(name: string): void {
    this.indexes.delete(name);
  }

  // And between batches: another process may have renamed or replaced any of them.
  forgetAll(): void {
    this.indexes.clear();
  }
}

// The socket of this process's own namespace, kept between sessions: a new one (five
// system calls, and the kernel binding it at its first request) made the bridge's
// look at its bridge take ~100 us instead of ~60, twice per ADD. Sessions are
// synchronous, so no two use it at once; one that fails gives it up, whatever state
// an interrupted answer left it in. Other namespaces' sockets live for one session.
let ownSession: RouteSession | undefined;

export function withRouteSession<T>(netns: string | undefined, work: (session: RouteSession) => T): T {
  if (netns !== undefined) {
    const session = RouteSession.open(netns);
    try {
      return work(session);
    } finally {
      session.close();
    }
  }
  const session = ownSession ?? RouteSession.open();
  ownSession = undefined;
  let failed = true;
  try {
    const result = work(session);
    // Work that went on after returning would share the socket with the next session.
    if (result instanceof Promise) throw new Error('a netlink session must be synchronous');
    failed = false;
    return result;
  } finally {
    session.forgetAll();
    if (failed || ownSession !== undefined) session.close();
    else ownSession = session;
  }
}
