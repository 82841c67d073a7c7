import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

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

// Everything one attachment (network, container ID, ifname) owns in the ruleset,
// kept so that DEL removes exactly that, even with the netns gone and no prevResult.
export interface AttachmentRules {
  network: string;
  containerId: string;
  ifname: string;
  elements: RuleElement[];
  masquerade: string[];
  portMappings: PortMapping[];
}

// Which rule set the file belongs to: the bridge's masquerade and portmap's
// mappings are installed and removed by different plugins.
export type RuleOwner = 'masquerade' | 'portmap';

export function networkStateDir(stateDir: string, network: string): string {
  return join(stateDir, 'firewall', network);
}

function stateFile(stateDir: string, owner: RuleOwner, rules: Pick<AttachmentRules, 'network' | 'containerId' | 'ifname'>): string {
  return join(networkStateDir(stateDir, rules.network), `${owner}.${rules.containerId}.${rules.ifname}.json`);
}

export function readAttachmentRules(stateDir: string, owner: RuleOwner, key: Pick<AttachmentRules, 'network' | 'containerId' | 'ifname'>): AttachmentRules | undefined {
  try {
    return JSON.parse(readFileSync(stateFile(stateDir, owner, key), 'utf8')) as AttachmentRules;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

export function writeAttachmentRules(stateDir: string, owner: RuleOwner, rules: AttachmentRules): void {
  const file = stateFile(stateDir, owner, rules);
  mkdirSync(networkStateDir(stateDir, rules.network), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, JSON.stringify(rules));
  renameSync(temporary, file);
}

export function removeAttachmentRules(stateDir: string, owner: RuleOwner, key: Pick<AttachmentRules, 'network' | 'containerId' | 'ifname'>): void {
  rmSync(stateFile(stateDir, owner, key), { force: true });
}

// Every attachment with rules in one network (or in all networks).
export function listAttachmentRules(stateDir: string, owner: RuleOwner, network?: string): AttachmentRules[] {
  const networks = network !== undefined ? [network] : safeReaddir(join(stateDir, 'firewall'));
  const rules: AttachmentRules[] = [];
  for (const name of networks) {
    for (const file of safeReaddir(networkStateDir(stateDir, name))) {
      if (!file.startsWith(`${owner}.`) || !file.endsWith('.json')) continue;
      try {
        rules.push(JSON.parse(readFileSync(join(networkStateDir(stateDir, name), file), 'utf8')) as AttachmentRules);
      } catch {
        // A file being replaced right now; the next listing sees it.
      }
    }
  }
  return rules;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
