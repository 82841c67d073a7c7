import { closeSync, openSync, readSync } from 'node:fs';
import { ipJson, type IpOperation } from './ip.js';

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

interface IpLinkJson {
  ifindex: number;
  ifname: string;
  address?: string;
  mtu: number;
  flags?: string[];
  master?: string;
  ifalias?: string;
  linkinfo?: { info_kind?: string; info_slave_data?: { hairpin?: boolean } };
  addr_info?: Array<{ family: string; local: string; prefixlen: number; scope?: string }>;
}

function toLink(json: IpLinkJson): Link {
  return {
    name: json.ifname,
    index: json.ifindex,
    mac: json.address ?? '',
    mtu: json.mtu,
    kind: json.linkinfo?.info_kind,
    master: json.master,
    up: (json.flags ?? []).includes('UP'),
    alias: json.ifalias,
    hairpin: json.linkinfo?.info_slave_data?.hairpin,
    addresses: (json.addr_info ?? [])
      .filter((entry) => entry.family === 'inet' || entry.family === 'inet6')
      .map((entry) => ({ family: entry.family === 'inet' ? 4 : 6, address: entry.local, prefixLength: entry.prefixlen })),
  };
}

export function parseLinks(json: unknown[]): Link[] {
  return (json as IpLinkJson[]).map(toLink);
}

// One link with its addresses, or undefined when there is no such link.
export async function findLink(name: string, netns?: string): Promise<Link | undefined> {
  const json = await ipJson<IpLinkJson[]>(['-d', 'addr', 'show', 'dev', name], netns);
  return json && json[0] ? toLink(json[0]) : undefined;
}

export async function listLinks(netns?: string, filter: { master?: string; kind?: string } = {}): Promise<Link[]> {
  const args = ['-d', 'link', 'show'];
  if (filter.master !== undefined) args.push('master', filter.master);
  if (filter.kind !== undefined) args.push('type', filter.kind);
  return parseLinks((await ipJson<unknown[]>(args, netns)) ?? []);
}

const macPattern = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export function isValidMac(mac: string): boolean {
  return macPattern.test(mac) && (parseInt(mac.slice(0, 2), 16) & 1) === 0;
}

// Read from /dev/urandom rather than node:crypto, whose loading costs a plugin
// ~1.5 ms of start-up for six bytes.
function randomBytes(count: number): Buffer {
  const bytes = Buffer.alloc(count);
  const fd = openSync('/dev/urandom', 'r');
  try {
    readSync(fd, bytes, 0, count, null);
  } finally {
    closeSync(fd);
  }
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
  vlanFiltering?: boolean;
}

export function createBridge(spec: BridgeSpec): IpOperation {
  const tokens = ['link', 'add', 'name', spec.name, 'address', spec.mac];
  if (spec.mtu !== undefined) tokens.push('mtu', String(spec.mtu));
  tokens.push('type', 'bridge');
  if (spec.vlanFiltering) tokens.push('vlan_filtering', '1');
  return { tokens, what: `create bridge ${spec.name}`, tolerate: /File exists/ };
}

export function setLinkUp(name: string): IpOperation {
  return { tokens: ['link', 'set', 'dev', name, 'up'], what: `bring ${name} up` };
}

export function setPromiscuous(name: string, on: boolean): IpOperation {
  return { tokens: ['link', 'set', 'dev', name, 'promisc', on ? 'on' : 'off'], what: `set promiscuous mode on ${name}` };
}

export interface VethSpec {
  hostName: string;
  hostMac: string;
  peerName: string;
  peerMac: string;
  peerNetns: string;
  master: string;
  mtu?: number;
  // Owner label on the host end, read back by garbage collection.
  alias?: string;
}

// Creates both ends in one netlink request: the host end up and enslaved to the
// bridge, the peer directly inside the container namespace (so its name can never
// clash with a host interface, and a clash inside the container fails atomically).
export function createVethPair(spec: VethSpec): IpOperation {
  const tokens = ['link', 'add', 'name', spec.hostName, 'up', 'master', spec.master, 'address', spec.hostMac];
  if (spec.mtu !== undefined) tokens.push('mtu', String(spec.mtu));
  tokens.push('type', 'veth', 'peer', 'name', spec.peerName, 'address', spec.peerMac);
  if (spec.mtu !== undefined) tokens.push('mtu', String(spec.mtu));
  tokens.push('netns', spec.peerNetns);
  return { tokens, what: `create veth pair ${spec.hostName}/${spec.peerName}` };
}

export function setAlias(name: string, alias: string): IpOperation {
  return { tokens: ['link', 'set', 'dev', name, 'alias', alias], what: `label ${name}` };
}

export function setHairpin(port: string, on: boolean): IpOperation {
  return { tokens: ['link', 'set', 'dev', port, 'type', 'bridge_slave', 'hairpin', on ? 'on' : 'off'], what: `set hairpin mode on ${port}` };
}

// Keeps the port from forwarding to other isolated ports of its bridge (portIsolation).
export function isolatePort(port: string): IpOperation {
  return { tokens: ['link', 'set', 'dev', port, 'type', 'bridge_slave', 'isolated', 'on'], what: `isolate port ${port}` };
}

export function deleteLink(name: string): IpOperation {
  return { tokens: ['link', 'del', 'dev', name], what: `delete ${name}`, tolerate: /Cannot find device|does not exist|No such device/ };
}
