import { digest } from '../../util/digest.js';

// The label on each host veth naming the attachment it serves, so that GC can find
// veths left behind by containers that no longer exist: "trestle/<network>/<cid>/<ifname>".
// The kernel keeps at most 255 bytes of a link's alias (IFALIASZ - 1), and a container
// ID alone may have 255: when the readable label does not fit, the container ID, then
// the network name, is shortened to its first characters, "+" and its digest. "+" is
// outside the spec's grammar for both, so a shortened part never equals a real one.
const prefix = 'trestle';
const maxAliasBytes = 255;
const keptCharacters = 12;

export interface OwnerLabel {
  network: string;
  containerId: string;
  ifname: string;
}

function shortened(value: string): string {
  return `${value.slice(0, keptCharacters)}+${digest(value)}`;
}

function fits(alias: string): boolean {
  return Buffer.byteLength(alias, 'utf8') <= maxAliasBytes;
}

export function ownerAlias(network: string, containerId: string, ifname: string): string {
  const readable = `${prefix}/${network}/${containerId}/${ifname}`;
  if (fits(readable)) return readable;
  const shortId = `${prefix}/${network}/${shortened(containerId)}/${ifname}`;
  if (fits(shortId)) return shortId;
  return `${prefix}/${shortened(network)}/${shortened(containerId)}/${ifname}`;
}

function labelParts(alias: string | undefined): string[] | undefined {
  if (alias === undefined) return undefined;
  const parts = alias.split('/');
  return parts.length === 4 && parts[0] === prefix ? parts.slice(1) : undefined;
}

function partMatches(part: string, value: string): boolean {
  return part === value || (part.includes('+') && part === shortened(value));
}

// True when `alias` labels exactly this attachment, in either form.
export function ownerMatches(alias: string | undefined, owner: OwnerLabel): boolean {
  const parts = labelParts(alias);
  if (parts === undefined) return false;
  const [network, containerId, ifname] = parts as [string, string, string];
  return partMatches(network, owner.network) && partMatches(containerId, owner.containerId) && ifname === owner.ifname;
}

// True when `alias` labels some attachment of `network`, in either form.
export function labelsNetwork(alias: string | undefined, network: string): boolean {
  const parts = labelParts(alias);
  return parts !== undefined && partMatches(parts[0] as string, network);
}
