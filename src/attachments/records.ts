import { mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { debrisGraceMs, olderThan } from '../util/debris.js';
import { digest } from '../util/digest.js';
import { removeFile } from '../util/files.js';

// What trestle-bridge made for one attachment, kept for the people who run the node
// (`trestle ls`, `trestle inspect`): the runtime thinks in pods, the kernel in veths and
// addresses. Nothing is derived from it: DEL and GC work from the kernel, the IPAM store
// and the firewall records, so a record that is lost or damaged costs only its display.
export interface Pod {
  namespace: string;
  name: string;
  uid?: string;
}

export interface AttachmentRecord {
  network: string;
  containerId: string;
  ifname: string;
  netns: string;
  pod?: Pod;
  bridge: string;
  hostVeth: string;
  hostMac: string;
  containerMac: string;
  addresses: string[];
  createdAt: string;
}

type Key = Pick<AttachmentRecord, 'network' | 'containerId' | 'ifname'>;

function recordsDir(stateDir: string, network?: string): string {
  return network === undefined ? join(stateDir, 'attachments') : join(stateDir, 'attachments', network);
}

function recordFile(stateDir: string, key: Key): string {
  return join(recordsDir(stateDir, key.network), `${key.containerId.slice(0, 64)}.${digest(`${key.network}/${key.containerId}/${key.ifname}`)}.json`);
}

// The pod a Kubernetes runtime names in CNI_ARGS (K8S_POD_NAMESPACE, K8S_POD_NAME,
// K8S_POD_UID), when it names one.
export function podOf(args: ReadonlyMap<string, string>): Pod | undefined {
  const namespace = args.get('K8S_POD_NAMESPACE');
  const name = args.get('K8S_POD_NAME');
  if (!namespace || !name) return undefined;
  const pod: Pod = { namespace, name };
  const uid = args.get('K8S_POD_UID');
  if (uid) pod.uid = uid;
  return pod;
}

export function writeRecord(stateDir: string, record: AttachmentRecord): void {
  const file = recordFile(stateDir, record);
  mkdirSync(recordsDir(stateDir, record.network), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, JSON.stringify(record));
  renameSync(temporary, file);
}

export function removeRecord(stateDir: string, key: Key): void {
  removeFile(recordFile(stateDir, key));
}

function isRecord(value: unknown): value is AttachmentRecord {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  const strings = ['network', 'containerId', 'ifname', 'netns', 'bridge', 'hostVeth', 'hostMac', 'containerMac', 'createdAt'];
  return strings.every((key) => typeof record[key] === 'string') && Array.isArray(record['addresses']) && record['addresses'].every((entry) => typeof entry === 'string');
}

function names(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

// Every readable record (of one network, or all).
export function readRecords(stateDir: string, network?: string): AttachmentRecord[] {
  const networks = network !== undefined ? [network] : names(recordsDir(stateDir));
  const records: AttachmentRecord[] = [];
  for (const name of networks) {
    for (const file of names(recordsDir(stateDir, name))) {
      if (!file.endsWith('.json')) continue;
      try {
        const value: unknown = JSON.parse(readFileSync(join(recordsDir(stateDir, name), file), 'utf8'));
        if (isRecord(value) && value.network === name) records.push(value);
      } catch {
        // Damaged: GC removes it.
      }
    }
  }
  return records;
}

// Records of attachments that are not among `keep`, damaged records, and temporary
// files left by a writer that died.
export function collectRecords(stateDir: string, network: string, keep: readonly Key[]): void {
  const dir = recordsDir(stateDir, network);
  for (const file of names(dir)) {
    const path = join(dir, file);
    if (file.endsWith('.tmp')) {
      if (olderThan(path, debrisGraceMs)) removeFile(path);
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(readFileSync(path, 'utf8'));
    } catch {
      value = undefined;
    }
    const kept = isRecord(value) && keep.some((key) => key.containerId === value.containerId && key.ifname === value.ifname);
    if (!kept) removeFile(path);
  }
}
