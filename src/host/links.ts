import { closeSync, openSync, readSync } from 'node:fs';
import { HostError } from './errors.js';
import { decodeAttributes, decodeString, decodeU32, decodeU8, Flags, nestedAttribute, stringAttribute, u32Attribute, u8Attribute, attribute } from './netlink/message.js';
import { AddressFamily, LinkAttribute, LinkInfo, RouteSession, Rtm, linkByName, linkHeader, withRouteSession } from './netlink/route.js';
import { NetlinkError } from './netlink/socket.js';
import { Errno } from './netlink/errno.js';
import { lookup, type HostOperation } from './operations.js';
import { listAddresses } from './addresses.js';
import { isCurrentNetworkNamespace } from './netns.js';
import { disableLinkIpv6 } from './sysctl.js';

export interface LinkAddress {
  family: 4 | 6;
  address: string;
  prefixLength: number;
}

export interface Link {
  name: string;
  index: number;
  mac: string;
  mtu: number;
  kind: string | undefined;
  master: string | undefined;
  up: boolean;
  alias: string | undefined;
  hairpin: boolean | undefined;
  addresses: LinkAddress[];
}

const IFF_UP = 0x1;
const IFF_PROMISC = 0x100;
const bridgeMulticastSnooping = 23;
const vethPeer = 1;
const bridgePortMode = 4;
const bridgePortIsolated = 33;

function formatMac(bytes: Buffer | undefined): string {
  return bytes === undefined ? '' : [...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join(':');
}

function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((pair) => parseInt(pair, 16)));
}

// A link as the kernel describes it (RTM_NEWLINK), its master still an index.
function decodeLink(payload: Buffer): Link & { masterIndex: number | undefined } {
  const attributes = decodeAttributes(payload, 16);
  const info = attributes.get(LinkAttribute.linkInfo);
  const details = info === undefined ? new Map<number, Buffer>() : decodeAttributes(info);
  const slaveKind = decodeString(details.get(LinkInfo.slaveKind));
  const slaveData = details.get(LinkInfo.slaveData);
  const mode = slaveKind === 'bridge' && slaveData !== undefined ? decodeU8(decodeAttributes(slaveData).get(bridgePortMode)) : undefined;
  return {
    name: decodeString(attributes.get(LinkAttribute.name)) ?? '',
    index: payload.readInt32LE(4),
    mac: formatMac(attributes.get(LinkAttribute.address)),
    mtu: decodeU32(attributes.get(LinkAttribute.mtu)) ?? 0,
    kind: decodeString(details.get(LinkInfo.kind)),
    master: undefined,
    masterIndex: decodeU32(attributes.get(LinkAttribute.master)),
    up: (payload.readUInt32LE(8) & IFF_UP) !== 0,
    alias: decodeString(attributes.get(LinkAttribute.alias)),
    hairpin: mode === undefined ? undefined : mode !== 0,
    addresses: [],
  };
}

function withMaster(session: RouteSession, link: Link & { masterIndex: number | undefined }, known: Map<number, string>): Link {
  const { masterIndex, ...rest } = link;
  if (masterIndex !== undefined && masterIndex !== 0) rest.master = known.get(masterIndex) ?? session.nameOf(masterIndex);
  return rest;
}

// One link with its addresses, or undefined when there is no such link.
export async function findLink(name: string, netns?: string): Promise<Link | undefined> {
  return withRouteSession(netns, (session) =>
    lookup(`look up ${name}`, () => {
      const link = withMaster(session, decodeLink(session.socket.get(Rtm.getLink, linkByName(name)).payload), new Map());
      link.addresses = listAddresses(session, link.index);
      return link;
    }),
  );
}

// The links of a namespace, filtered by the kernel by master and kind; without their
// addresses. No links when the master does not exist.
export async function listLinks(netns?: string, filter: { master?: string; kind?: string } = {}): Promise<Link[]> {
  return withRouteSession(netns, (session) => {
    const request = [linkHeader()];
    if (filter.master !== undefined) {
      const master = filter.master;
      const index = lookup(`look up ${master}`, () => session.indexOf(master));
      if (index === undefined) return [];
      request.push(u32Attribute(LinkAttribute.master, index));
    }
    if (filter.kind !== undefined) request.push(nestedAttribute(LinkAttribute.linkInfo, [stringAttribute(LinkInfo.kind, filter.kind)]));
    return (
      lookup('list links', () => {
        const links = session.socket.dump(Rtm.getLink, Buffer.concat(request)).map((message) => decodeLink(message.payload));
        const names = new Map(links.map((link) => [link.index, link.name]));
        return links.filter((link) => filter.kind === undefined || link.kind === filter.kind).map((link) => withMaster(session, link, names));
      }) ?? []
    );
  });
}

const macPattern = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export function isValidMac(mac: string): boolean {
  return macPattern.test(mac) && (parseInt(mac.slice(0, 2), 16) & 1) === 0;
}

// Read from /dev/urandom rather than node:crypto, whose loading costs a plugin
// ~1.5 ms of start-up for six bytes; 240 bytes at a time, since an ADD takes 16 (a
// veth name, two MACs) and each read was an open, a read and a close.
const randomPool = Buffer.alloc(240);
let randomUsed = randomPool.length;

function randomBytes(count: number): Buffer {
  if (randomUsed + count > randomPool.length) {
    const fd = openSync('/dev/urandom', 'r');
    try {
      readSync(fd, randomPool, 0, randomPool.length, null);
    } finally {
      closeSync(fd);
    }
    randomUsed = 0;
  }
  const bytes = Buffer.from(randomPool.subarray(randomUsed, randomUsed + count));
  randomUsed += count;
  return bytes;
}

// A random unicast, locally administered MAC. Choosing MACs ourselves means the ADD
// result needs no extra query to learn them, and a bridge keeps one stable MAC
// instead of taking the lowest port's as ports come and go.
export function randomMac(): string {
  const bytes = randomBytes(6);
  bytes[0] = ((bytes[0] as number) & 0xfe) | 0x02;
  return [...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join(':');
}

export function randomVethName(): string {
  return `veth${randomBytes(4).toString('hex')}`;
}

export interface BridgeSpec {
  name: string;
  mac: string;
  mtu?: number;
  // false: IGMP and MLD snooping off; otherwise the kernel's default (on).
  multicastSnooping?: boolean;
}

// A change to an existing link, found by name (the kernel resolves IFLA_IFNAME).
function changeLink(session: RouteSession, name: string, header: Buffer, attributes: readonly Buffer[]): void {
  session.socket.change(Rtm.newLink, 0, Buffer.concat([linkByName(name, header), ...attributes]));
}

function optionalMtu(mtu: number | undefined): Buffer[] {
  return mtu === undefined ? [] : [u32Attribute(LinkAttribute.mtu, mtu)];
}

export function createBridge(spec: BridgeSpec): HostOperation {
  return {
    what: `create bridge ${spec.name}`,
    tolerate: [Errno.exists],
    apply: (session) => {
      const data = spec.multicastSnooping === false ? [nestedAttribute(LinkInfo.data, [u8Attribute(bridgeMulticastSnooping, 0)])] : [];
      session.socket.change(
        Rtm.newLink,
        Flags.create | Flags.exclusive,
        Buffer.concat([
          linkHeader(),
          stringAttribute(LinkAttribute.name, spec.name),
          attribute(LinkAttribute.address, macBytes(spec.mac)),
          ...optionalMtu(spec.mtu),
          nestedAttribute(LinkAttribute.linkInfo, [stringAttribute(LinkInfo.kind, 'bridge'), ...data]),
        ]),
      );
    },
  };
}

export function setLinkUp(name: string): HostOperation {
  return { what: `bring ${name} up`, apply: (session) => changeLink(session, name, linkHeader({ flags: IFF_UP, change: IFF_UP }), []) };
}

export function setPromiscuous(name: string, on: boolean): HostOperation {
  return { what: `set promiscuous mode on ${name}`, apply: (session) => changeLink(session, name, linkHeader({ flags: on ? IFF_PROMISC : 0, change: IFF_PROMISC }), []) };
}

export interface VethSpec {
  hostName: string;
  hostMac: string;
  peerName: string;
  peerMac: string;
  peerNetns: string;
  master: string;
  mtu?: number;
  // TX and RX queues of each end; the kernel's default otherwise.
  queues?: number;
}

function optionalQueues(queues: number | undefined): Buffer[] {
  return queues === undefined ? [] : [u32Attribute(LinkAttribute.numTxQueues, queues), u32Attribute(LinkAttribute.numRxQueues, queues)];
}

// Creates both ends in one netlink request: the host end enslaved to the bridge but
// down (bringUpLabelled raises it), the peer directly inside the container namespace
// (so its name can never clash with a host interface, and a clash inside the
// container fails atomically).
export function createVethPair(spec: VethSpec): HostOperation {
  return {
    what: `create veth pair ${spec.hostName}/${spec.peerName}`,
    explain: { [Errno.exchangeFull]: `bridge ${spec.master} already has the 1,023 ports the kernel allows` },
    apply: (session) => {
      const master = session.indexOf(spec.master);
      let netns: number;
      try {
        netns = openSync(spec.peerNetns, 'r');
      } catch (error) {
        throw new HostError(`cannot open network namespace ${spec.peerNetns}: ${(error as Error).message}`, (error as Error).message, true);
      }
      try {
        const peer = Buffer.concat([
          linkHeader(),
          stringAttribute(LinkAttribute.name, spec.peerName),
          attribute(LinkAttribute.address, macBytes(spec.peerMac)),
          ...optionalMtu(spec.mtu),
          ...optionalQueues(spec.queues),
          u32Attribute(LinkAttribute.netnsFd, netns),
        ]);
        session.socket.change(
          Rtm.newLink,
          Flags.create | Flags.exclusive,
          Buffer.concat([
            linkHeader(),
            stringAttribute(LinkAttribute.name, spec.hostName),
            attribute(LinkAttribute.address, macBytes(spec.hostMac)),
            ...optionalMtu(spec.mtu),
            ...optionalQueues(spec.queues),
            u32Attribute(LinkAttribute.master, master),
            nestedAttribute(LinkAttribute.linkInfo, [stringAttribute(LinkInfo.kind, 'veth'), nestedAttribute(LinkInfo.data, [attribute(vethPeer, peer)])]),
          ]),
        );
      } finally {
        closeSync(netns);
      }
    },
  };
}

// Up and labelled in one request: each change of a bridge port costs the kernel work
// that grows with the number of ports.
export function bringUpLabelled(name: string, alias: string): HostOperation {
  return { what: `bring ${name} up`, apply: (session) => changeLink(session, name, linkHeader({ flags: IFF_UP, change: IFF_UP }), [stringAttribute(LinkAttribute.alias, alias)]) };
}

// A bridge port needs no IPv6 of its own (the bridge carries the gateway; frames
// cross the port below IP). With it, every port adds a link-local address and routes
// to the node's IPv6 table, and the kernel walks that whole table at each change of
// any link: at 900 containers an ADD took 7.4 ms instead of 4.7. Before the link is
// up. A sysctl acts on the namespace of the thread that writes it, so this refuses a
// batch meant for another namespace rather than touch a link of the same name here.
export function disableIpv6(name: string): HostOperation {
  return {
    what: `turn IPv6 off on ${name}`,
    apply: (session) => {
      if (session.netns !== undefined && !isCurrentNetworkNamespace(session.netns)) {
        throw new HostError(`cannot turn IPv6 off on ${name} in ${session.netns}: only in this process's own network namespace`, 'another network namespace');
      }
      disableLinkIpv6(name);
    },
  };
}

const ipv6AddressGenerationMode = 8;
const noAddressGeneration = 1;

// Keeps a link that is still down from ever giving itself an IPv6 address: no
// link-local address, so none of the traffic that comes with one (DAD, router
// solicitations, MLD reports for its solicited-node group). Through rtnetlink, not
// the disable_ipv6 sysctl: /proc/sys/net/ipv6 of every namespace that ever opened it
// hangs off one shared directory entry, so each later lookup there, from any
// namespace, walks one entry per such container (90 us instead of 17 after 600).
// A request of its own before the link comes up: the kernel applies IFLA_AF_SPEC
// after the flags of the same request, when the link-local address already exists.
// A kernel without IPv6 has nothing to do.
export function withoutIpv6Addresses(name: string): HostOperation {
  return {
    what: `turn IPv6 address generation off on ${name}`,
    tolerate: [Errno.familyNotSupported],
    apply: (session) =>
      changeLink(session, name, linkHeader(), [
        nestedAttribute(LinkAttribute.afSpec, [nestedAttribute(AddressFamily.inet6, [u8Attribute(ipv6AddressGenerationMode, noAddressGeneration)])]),
      ]),
  };
}

// A setting of a bridge port, as the bridge (its master) defines them.
function bridgePortOperation(what: string, port: string, setting: number, value: number): HostOperation {
  return {
    what,
    apply: (session) =>
      changeLink(session, port, linkHeader(), [
        nestedAttribute(LinkAttribute.linkInfo, [stringAttribute(LinkInfo.slaveKind, 'bridge'), nestedAttribute(LinkInfo.slaveData, [u8Attribute(setting, value)])]),
      ]),
  };
}

export function setHairpin(port: string, on: boolean): HostOperation {
  return bridgePortOperation(`set hairpin mode on ${port}`, port, bridgePortMode, on ? 1 : 0);
}

// Keeps the port from forwarding to other isolated ports of its bridge (portIsolation).
export function isolatePort(port: string): HostOperation {
  return bridgePortOperation(`isolate port ${port}`, port, bridgePortIsolated, 1);
}

export function deleteLink(name: string): HostOperation {
  return {
    what: `delete ${name}`,
    tolerate: [Errno.noDevice],
    apply: (session) => {
      session.forget(name);
      session.socket.change(Rtm.delLink, 0, linkByName(name));
    },
  };
}

// How long removeLink polls back to back for the link to leave its namespace before
// it waits a millisecond between looks (the kernel takes well under one normally).
const busyPolls = 100;

// Deletes a link (both ends of a veth) and returns as soon as it is gone from its
// namespace: the kernel unlists a device at once but returns from the deletion only
// after RCU grace periods, 15-40 ms here. That wait runs on a worker thread; nothing
// can use the device meanwhile, and a process that exits or is killed during it does
// not stop the kernel from finishing. A link that is already gone is no error.
export async function removeLink(name: string, netns?: string): Promise<void> {
  const watcher = RouteSession.open(netns);
  try {
    // Its own socket: the answer to the deletion arrives while the watcher asks.
    const deleter = RouteSession.open(netns);
    let settled = false;
    const deletion = deleter.socket.changeInBackground(Rtm.delLink, 0, linkByName(name)).finally(() => {
      settled = true;
      deleter.close();
    });
    // Once the link is gone the answer is not awaited: the kernel can only have succeeded.
    deletion.catch(() => undefined);
    for (let polls = 0; !settled; polls++) {
      if (lookup(`look up ${name}`, () => watcher.socket.get(Rtm.getLink, linkByName(name))) === undefined) return;
      await (polls < busyPolls ? new Promise((resolve) => setImmediate(resolve)) : new Promise((resolve) => setTimeout(resolve, 1)));
    }
    try {
      await deletion;
    } catch (error) {
      if (!(error instanceof NetlinkError)) throw error;
      if (error.errno !== Errno.noDevice) throw new HostError(`failed to delete ${name}: ${error.reason}`, error.reason, false, `delete ${name}`);
    }
  } finally {
    watcher.close();
  }
}
