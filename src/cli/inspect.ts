// `trestle inspect ID|NAMESPACE/POD`: one attachment's whole record — addresses, host
// veth, MACs, host ports — and every firewall element it owns, each checked against
// the kernel, so an operator can see at once what is missing or left over.
import { readRecords, type AttachmentRecord } from '../attachments/records.js';
import { listKernelElements } from '../firewall/kernel.js';
import { canonicalKey } from '../firewall/owners.js';
import { table } from '../firewall/ruleset.js';
import { readAttachmentRules, ruleOwners, type PortMapping } from '../firewall/state.js';
import { linkPresent } from '../host/presence.js';
import { DiskStore } from '../ipam/disk-store.js';
import { UsageError } from './ls.js';

export interface InspectOptions {
  dataDir: string;
  stateDir: string;
}

export interface ElementState {
  owner: string;
  set: string;
  key: string;
  present: boolean;
}

export interface Inspection extends AttachmentRecord {
  hostVethPresent: boolean;
  reserved: Array<{ address: string; reserved: boolean }>;
  hostPorts: PortMapping[];
  elements: ElementState[];
}

function matches(record: AttachmentRecord, wanted: string): boolean {
  if (wanted.includes('/')) return record.pod !== undefined && `${record.pod.namespace}/${record.pod.name}` === wanted;
  return record.containerId === wanted || (wanted.length >= 6 && record.containerId.startsWith(wanted));
}

export async function inspect(wanted: string, options: InspectOptions): Promise<Inspection[]> {
  if (wanted === '') throw new UsageError('inspect needs a container ID (or its first 6+ characters) or NAMESPACE/POD');
  const records = readRecords(options.stateDir).filter((record) => matches(record, wanted));
  if (records.length === 0) return [];
  const kernel = new Set((await listKernelElements(table)).map((element) => `${element.set}|${canonicalKey(element.key)}`));
  return records.map((record) => {
    const store = new DiskStore(options.dataDir, record.network);
    const reserved = record.addresses.map((cidr) => {
      const address = cidr.split('/')[0] as string;
      const holder = store.get(address);
      return { address, reserved: holder?.containerId === record.containerId };
    });
    const elements: ElementState[] = [];
    let hostPorts: PortMapping[] = [];
    for (const kind of ruleOwners) {
      const reading = readAttachmentRules(options.stateDir, kind, record);
      if (reading.state !== 'present') continue;
      if (kind === 'portmap') hostPorts = reading.rules.portMappings;
      for (const element of reading.rules.elements) {
        elements.push({ owner: kind, set: element.set, key: element.key, present: kernel.has(`${element.set}|${canonicalKey(element.key)}`) });
      }
    }
    return { ...record, hostVethPresent: linkPresent(record.hostVeth), reserved, hostPorts, elements };
  });
}

export function describeInspection(found: Inspection): string {
  const mark = (ok: boolean) => (ok ? 'present' : 'MISSING');
  const lines = [
    `attachment ${found.network}/${found.containerId}/${found.ifname}${found.pod ? ` (pod ${found.pod.namespace}/${found.pod.name}${found.pod.uid ? `, uid ${found.pod.uid}` : ''})` : ''}`,
    `  netns        ${found.netns}`,
    `  created      ${found.createdAt}`,
    `  bridge       ${found.bridge}`,
    `  host veth    ${found.hostVeth} (${found.hostMac}): ${mark(found.hostVethPresent)}`,
    `  container    ${found.ifname} (${found.containerMac})`,
    ...found.reserved.map((entry) => `  address      ${entry.address}: ${entry.reserved ? 'reserved' : 'NOT RESERVED'}`),
    ...found.hostPorts.map((mapping) => `  host port    ${mapping.hostIP ?? '*'}:${mapping.hostPort}/${mapping.protocol} -> ${mapping.containerIP}:${mapping.containerPort}`),
    ...found.elements.map((element) => `  nft element  ${element.set} { ${element.key} } (${element.owner}): ${mark(element.present)}`),
  ];
  return `${lines.join('\n')}\n`;
}
