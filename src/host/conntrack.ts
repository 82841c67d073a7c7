import { HostError } from './errors.js';
import { attribute, decodeAttributes, decodeU8 } from './netlink/message.js';
import { Errno } from './netlink/errno.js';
import { NetlinkError, NetlinkSocket } from './netlink/socket.js';

// ctnetlink (the kernel's conntrack table over NETLINK_NETFILTER), as `conntrack -L`
// and `-D` use it, without starting them.
const NETLINK_NETFILTER = 12;
const conntrackSubsystem = 1;
const getEntry = (conntrackSubsystem << 8) | 1;
const deleteEntry = (conntrackSubsystem << 8) | 2;
const familyUnspec = 0;
const tupleOriginal = 1;
const zone = 9;
const tupleProtocol = 2;
const protocolNumber = 1;
const destinationPort = 3;
const udp = 17;

// struct nfgenmsg: family, version 0, resource id 0.
function header(family: number): Buffer {
  return Buffer.from([family, 0, 0, 0]);
}

// Drops UDP conntrack entries aimed at host ports, so datagrams to a port that was
// just (un)mapped do not keep following a stale translation. One dump of the table,
// then a deletion only for the entries that match (normally none): a call with
// thousands of mappings costs one listing. Best effort: a kernel without ctnetlink is
// not an error. Returns warnings, if any.
export async function flushUdpEntries(hostPorts: readonly number[]): Promise<string[]> {
  const wanted = new Set(hostPorts);
  if (wanted.size === 0) return [];
  let socket: NetlinkSocket;
  try {
    socket = NetlinkSocket.open(NETLINK_NETFILTER);
  } catch (error) {
    return [`conntrack table not reachable (${(error as Error).message}): stale UDP entries for the mapped ports were not flushed`];
  }
  try {
    const warnings: string[] = [];
    for (const entry of socket.dump(getEntry, header(familyUnspec))) {
      const attributes = decodeAttributes(entry.payload, 4);
      const original = attributes.get(tupleOriginal);
      const protocol = original === undefined ? undefined : decodeAttributes(original).get(tupleProtocol);
      if (protocol === undefined) continue;
      const fields = decodeAttributes(protocol);
      const port = fields.get(destinationPort);
      if (decodeU8(fields.get(protocolNumber)) !== udp || port === undefined || !wanted.has(port.readUInt16BE(0))) continue;
      // The entry is named by its original tuple (and zone), exactly as dumped.
      const name = [attribute(tupleOriginal | 0x8000, original as Buffer)];
      const inZone = attributes.get(zone);
      if (inZone !== undefined) name.push(attribute(zone, inZone));
      try {
        socket.change(deleteEntry, 0, Buffer.concat([header(entry.payload.readUInt8(0)), ...name]));
      } catch (error) {
        if (error instanceof NetlinkError && error.errno === Errno.noEntry) continue;
        warnings.push(`stale UDP conntrack entry for port ${port.readUInt16BE(0)} not flushed: ${(error as Error).message}`);
      }
    }
    return warnings;
  } catch (error) {
    if (error instanceof NetlinkError || error instanceof HostError) return [`conntrack table not readable (${error.message}): stale UDP entries for the mapped ports were not flushed`];
    throw error;
  } finally {
    socket.close();
  }
}
