import { mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { digest } from '../util/digest.js';
import { removeFile } from '../util/files.js';
import { isSafeElementText, knownSets } from './ruleset.js';

// Where firewall ownership is remembered: /run is emptied at boot, as the kernel's
// nftables ruleset is, so the two can never disagree after a reboot.
export const defaultStateDir = '/run/trestle';

export interface PortMapping {
  hostIP?: string;
  hostPort: number;
  containerIP: string;
  containerPort: number;
  protocol: 'tcp' | 'udp' | 'sctp';
}

// One element of a shared nft set or map: `element` as added (with its value for a
// map), `key` as it is deleted.
export interface RuleElement {
  set: string;
  element: string;
  key: string;
}

export interface AttachmentKey {
  network: string;
  containerId: string;
  ifname: string;
}

// Everything one attachment (network, container ID, ifname) owns in the ruleset,
// kept so that DEL removes exactly that, even with the netns gone and no prevResult.
export interface AttachmentRules extends AttachmentKey {
  elements: RuleElement[];
  masquerade: string[];
  portMappings: PortMapping[];
}

// Which rule set the file belongs to: the bridge's masquerade and portmap's
// mappings are installed and removed by different plugins.
export type RuleOwner = 'masquerade' | 'portmap';
export const ruleOwners: readonly RuleOwner[] = ['masquerade', 'portmap'];

export function firewallDir(stateDir: string): string {
  return join(stateDir, 'firewall');
}

export function networkStateDir(stateDir: string, network: string): string {
  return join(firewallDir(stateDir), network);
}

const temporarySuffix = '.tmp';

// `<kind>.<start of the container ID>.<digest of the owner>.json`: readable, unique,
// and short enough for any file system whatever the ID's length (up to 255 bytes).
export function stateFileName(kind: RuleOwner, key: AttachmentKey): string {
  return `${kind}.${key.containerId.slice(0, 64)}.${digest(`${key.network}/${key.containerId}/${key.ifname}`)}.json`;
}

export function stateFile(stateDir: string, kind: RuleOwner, key: AttachmentKey): string {
  return join(networkStateDir(stateDir, key.network), stateFileName(kind, key));
}

function isPortMapping(value: unknown): value is PortMapping {
  if (typeof value !== 'object' || value === null) return false;
  const mapping = value as Record<string, unknown>;
  const port = (n: unknown) => typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
  return (
    port(mapping['hostPort']) &&
    port(mapping['containerPort']) &&
    typeof mapping['containerIP'] === 'string' &&
    (mapping['hostIP'] === undefined || typeof mapping['hostIP'] === 'string') &&
    ['tcp', 'udp', 'sctp'].includes(mapping['protocol'] as string)
  );
}

export function isRuleElement(value: unknown): value is RuleElement {
  if (typeof value !== 'object' || value === null) return false;
  const element = value as Record<string, unknown>;
  return (
    typeof element['set'] === 'string' &&
    knownSets.includes(element['set']) &&
    typeof element['element'] === 'string' &&
    typeof element['key'] === 'string' &&
    isSafeElementText(element['element']) &&
    isSafeElementText(element['key'])
  );
}

// A record as written, or undefined when it is not one of ours in every detail: a
// file found half-written or damaged is garbage, and what it names is never fed
// to nft.
function parseRules(text: string, expected?: AttachmentKey): AttachmentRules | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const rules = value as Record<string, unknown>;
  const strings = (list: unknown) => Array.isArray(list) && list.every((entry) => typeof entry === 'string');
  if (typeof rules['network'] !== 'string' || typeof rules['containerId'] !== 'string' || typeof rules['ifname'] !== 'string') return undefined;
  if (!Array.isArray(rules['elements']) || !rules['elements'].every(isRuleElement)) return undefined;
  if (!strings(rules['masquerade']) || !Array.isArray(rules['portMappings']) || !rules['portMappings'].every(isPortMapping)) return undefined;
  const parsed = value as AttachmentRules;
  if (expected && (parsed.network !== expected.network || parsed.containerId !== expected.containerId || parsed.ifname !== expected.ifname)) return undefined;
  return parsed;
}

export type StateReading = { state: 'absent' } | { state: 'unreadable'; file: string } | { state: 'present'; file: string; rules: AttachmentRules };

export function readAttachmentRules(stateDir: string, kind: RuleOwner, key: AttachmentKey): StateReading {
  const file = stateFile(stateDir, kind, key);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'absent' };
    return { state: 'unreadable', file };
  }
  const rules = parseRules(text, key);
  return rules ? { state: 'present', file, rules } : { state: 'unreadable', file };
}

// Written whole to a temporary file, then renamed over the record. Writers hold the
// firewall lock, so one temporary name per record is enough.
export function writeAttachmentRules(stateDir: string, kind: RuleOwner, rules: AttachmentRules): void {
  const file = stateFile(stateDir, kind, rules);
  mkdirSync(networkStateDir(stateDir, rules.network), { recursive: true, mode: 0o700 });
  const temporary = `${file}${temporarySuffix}`;
  writeFileSync(temporary, JSON.stringify(rules));
  renameSync(temporary, file);
}

export function removeAttachmentRules(stateDir: string, kind: RuleOwner, key: AttachmentKey): void {
  const file = stateFile(stateDir, kind, key);
  removeFile(`${file}${temporarySuffix}`);
  removeFile(file);
}

export interface NetworkListing {
  rules: AttachmentRules[];
  // Records that cannot be read, and temporary files: paths.
  unreadable: string[];
  temporary: string[];
}

// Every attachment with rules of one kind in one network (or in all networks).
export function listAttachmentRules(stateDir: string, kind: RuleOwner, network?: string): AttachmentRules[] {
  return scanAttachmentRules(stateDir, kind, network).rules;
}

export function scanAttachmentRules(stateDir: string, kind: RuleOwner, network?: string): NetworkListing {
  const networks = network !== undefined ? [network] : listNetworks(stateDir);
  const listing: NetworkListing = { rules: [], unreadable: [], temporary: [] };
  for (const name of networks) {
    const dir = networkStateDir(stateDir, name);
    for (const file of safeReaddir(dir)) {
      if (!file.startsWith(`${kind}.`)) continue;
      const path = join(dir, file);
      if (file.endsWith(temporarySuffix)) {
        listing.temporary.push(path);
        continue;
      }
      if (!file.endsWith('.json')) continue;
      let rules: AttachmentRules | undefined;
      try {
        rules = parseRules(readFileSync(path, 'utf8'));
      } catch {
        rules = undefined;
      }
      if (rules && rules.network === name && file === stateFileName(kind, rules)) listing.rules.push(rules);
      else listing.unreadable.push(path);
    }
  }
  return listing;
}

export function listNetworks(stateDir: string): string[] {
  return safeReaddir(firewallDir(stateDir)).filter((name) => name !== 'elements' && !name.endsWith('.lock'));
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
