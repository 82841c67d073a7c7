// `trestle ls [network]`: the addresses in use, read from the host-local store (the
// reference's layout, so allocations by either plugin show), with the host ports each
// container holds.
import { readdirSync } from 'node:fs';
import { isValidIdentifier } from '../cni/validate.js';
import { listAttachmentRules, type PortMapping } from '../firewall/state.js';
import { readRecords } from '../attachments/records.js';
import { DiskStore } from '../ipam/disk-store.js';
import { parseAddress } from '../util/ip.js';

export interface LsOptions {
  network?: string;
  // "namespace/name": only that pod's addresses.
  pod?: string;
  dataDir: string;
  stateDir: string;
}

export interface AddressInUse {
  network: string;
  ip: string;
  containerId: string;
  ifname: string;
  // "namespace/name" when a Kubernetes runtime named the pod.
  pod?: string;
  ports: string[];
}

export class UsageError extends Error {}

function describeMapping(mapping: PortMapping): string {
  const host = mapping.hostIP ? `${mapping.hostIP.includes(':') ? `[${mapping.hostIP}]` : mapping.hostIP}:` : '';
  return `${host}${mapping.hostPort}->${mapping.containerPort}/${mapping.protocol}`;
}

function networksIn(dataDir: string): string[] {
  try {
    return readdirSync(dataDir, { withFileTypes: true })
      .filter((entry) => entry.isDirectory() && isValidIdentifier(entry.name))
      .map((entry) => entry.name)
      .sort();
  } catch {
    return [];
  }
}

// In address order (10.0.0.9 before 10.0.0.10), IPv4 before IPv6.
function compareAddresses(a: string, b: string): number {
  const [x, y] = [parseAddress(a), parseAddress(b)];
  if (!x || !y) return a < b ? -1 : a > b ? 1 : 0;
  if (x.family !== y.family) return x.family - y.family;
  return x.value < y.value ? -1 : x.value > y.value ? 1 : 0;
}

export function addressesInUse(options: LsOptions): AddressInUse[] {
  if (options.network !== undefined && !isValidIdentifier(options.network)) {
    throw new UsageError(`"${options.network}" is not a network name (letters, digits, "_", "." and "-")`);
  }
  const networks = options.network !== undefined ? [options.network] : networksIn(options.dataDir);
  const rows: AddressInUse[] = [];
  for (const network of networks) {
    const ports = new Map<string, string[]>();
    for (const rules of listAttachmentRules(options.stateDir, 'portmap', network)) {
      ports.set(`${rules.containerId}/${rules.ifname}`, rules.portMappings.map(describeMapping));
    }
    const pods = new Map<string, string>();
    for (const record of readRecords(options.stateDir, network)) if (record.pod) pods.set(`${record.containerId}/${record.ifname}`, `${record.pod.namespace}/${record.pod.name}`);
    const reservations = new DiskStore(options.dataDir, network).list().sort((a, b) => compareAddresses(a.ip, b.ip));
    for (const reservation of reservations) {
      const owner = `${reservation.containerId}/${reservation.ifname}`;
      const row: AddressInUse = { network, ...reservation, ports: ports.get(owner) ?? [] };
      const pod = pods.get(owner);
      if (pod !== undefined) row.pod = pod;
      rows.push(row);
    }
  }
  return options.pod === undefined ? rows : rows.filter((row) => row.pod === options.pod);
}
