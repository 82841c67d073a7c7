import { flushUdpEntries } from '../host/conntrack.js';
import { HostError } from '../host/errors.js';
import { runNftScript } from '../host/nft.js';
import { enableRouteLocalnet } from '../host/sysctl.js';
import { formatAddress, formatPrefix, parseAddress, parsePrefix, type Family } from '../util/ip.js';
import { MissingRulesError, PortConflictError, type Firewall, type MasqueradeAddress, type Owner, type PortMappingOptions } from './firewall.js';
import { sharedStructures, table } from './ruleset.js';
import {
  listAttachmentRules,
  readAttachmentRules,
  removeAttachmentRules,
  writeAttachmentRules,
  type AttachmentRules,
  type PortMapping,
  type RuleElement,
  type RuleOwner,
} from './state.js';

const multicast: Record<Family, string> = { 4: '224.0.0.0/4', 6: 'ff00::/8' };
const protocols = new Set(['tcp', 'udp', 'sctp']);

// Every value that reaches a script is parsed and printed again by us, so nothing a
// caller passes can become nft syntax.
function address(text: string): { family: Family; text: string } {
  const parsed = parseAddress(text);
  if (!parsed) throw new HostError(`invalid IP address ${JSON.stringify(text)}`, 'invalid address');
  return { family: parsed.family, text: formatAddress(parsed) };
}

function subnet(text: string): { family: Family; text: string } {
  const parsed = parsePrefix(text);
  if (!parsed) throw new HostError(`invalid subnet ${JSON.stringify(text)}`, 'invalid subnet');
  return { family: parsed.family, text: formatPrefix(parsed) };
}

function port(value: number): string {
  if (!Number.isInteger(value) || value < 1 || value > 65535) throw new HostError(`invalid port ${JSON.stringify(value)}`, 'invalid port');
  return String(value);
}

function ownerComment(owner: Owner): string {
  return `${owner.network}/${owner.containerId}/${owner.ifname}`.slice(0, 120);
}

function addElement(element: RuleElement, create = false): string {
  return `${create ? 'create' : 'add'} element ${table} ${element.set} { ${element.element} }`;
}

// Deleting an element that is already gone fails the whole transaction; adding it
// first (a no-op when present) makes removal idempotent.
function removeElement(element: RuleElement): string[] {
  return [addElement(element), `delete element ${table} ${element.set} { ${element.key} }`];
}

function isMapElement(element: RuleElement): boolean {
  return element.set.startsWith('hp_');
}

export class NftablesFirewall implements Firewall {
  constructor(private readonly stateDir: string) {}

  // Only this container's elements, as one transaction; the shared table, sets and
  // rules are written too only when one of them is missing (first use on a node, or
  // someone flushed the ruleset). Re-asserting them every time cost ~12 ms of the
  // ~16 ms an ADD spent in nft (measured here).
  private apply(lines: readonly string[]): void {
    try {
      runNftScript(`${lines.join('\n')}\n`);
    } catch (error) {
      if (!(error instanceof HostError) || !error.notFound) throw error;
      runNftScript(`${[...sharedStructures(), ...lines].join('\n')}\n`);
    }
  }

  private install(kind: RuleOwner, rules: AttachmentRules, create: (element: RuleElement) => boolean): void {
    // Remembered first: if we die half-way, a later DEL still knows what to remove.
    writeAttachmentRules(this.stateDir, kind, rules);
    try {
      this.apply(rules.elements.map((element) => addElement(element, create(element))));
    } catch (error) {
      removeAttachmentRules(this.stateDir, kind, rules);
      throw error;
    }
  }

  private uninstall(kind: RuleOwner, owner: Owner): AttachmentRules | undefined {
    const rules = readAttachmentRules(this.stateDir, kind, owner);
    if (!rules) return undefined;
    if (rules.elements.length > 0) {
      try {
        this.apply(rules.elements.flatMap(removeElement));
      } catch (error) {
        if (!(error instanceof HostError) || !/File exists/.test(error.reason)) throw error;
        // The state file is written before the transaction, so an ADD that died in
        // between (or lost a port conflict it never got to record) leaves a host port
        // here that another container holds: re-adding that key with our target
        // fails. Such keys are theirs to keep; we remove only what is still ours.
        const heldByOthers = this.keysHeldByOthers(kind, owner);
        const ours = rules.elements.filter((element) => !(isMapElement(element) && heldByOthers.has(`${element.set}|${element.key}`)));
        if (ours.length > 0) this.apply(ours.flatMap(removeElement));
      }
    }
    removeAttachmentRules(this.stateDir, kind, owner);
    return rules;
  }

  private keysHeldByOthers(kind: RuleOwner, owner: Owner): Set<string> {
    const keys = new Set<string>();
    for (const rules of listAttachmentRules(this.stateDir, kind)) {
      if (rules.network === owner.network && rules.containerId === owner.containerId && rules.ifname === owner.ifname) continue;
      for (const element of rules.elements) keys.add(`${element.set}|${element.key}`);
    }
    return keys;
  }

  private verify(kind: RuleOwner, owner: Owner, what: string): void {
    const rules = readAttachmentRules(this.stateDir, kind, owner);
    if (!rules) throw new MissingRulesError(`no ${what} rules are recorded for ${ownerComment(owner)}`);
    if (rules.elements.length === 0) return;
    // A dry-run deletion succeeds only if every element is present.
    const script = rules.elements.map((element) => `delete element ${table} ${element.set} { ${element.key} }`).join('\n');
    try {
      runNftScript(`${script}\n`, { dryRun: true });
    } catch (error) {
      throw new MissingRulesError(`${what} rules of ${ownerComment(owner)} are missing from the ruleset: ${(error as Error).message}`);
    }
  }

  addMasquerade(owner: Owner, addresses: readonly MasqueradeAddress[]): void {
    const elements: RuleElement[] = [];
    for (const entry of addresses) {
      const container = address(entry.address);
      const local = subnet(entry.subnet);
      const family = container.family;
      elements.push({ set: `masq${family}`, element: container.text, key: container.text });
      for (const destination of [local.text, multicast[family]]) {
        const pair = `${container.text} . ${destination}`;
        elements.push({ set: `masqskip${family}`, element: pair, key: pair });
      }
    }
    this.install('masquerade', { ...owner, elements, masquerade: addresses.map((entry) => entry.address), portMappings: [] }, () => false);
  }

  removeMasquerade(owner: Owner): void {
    this.uninstall('masquerade', owner);
  }

  checkMasquerade(owner: Owner): void {
    this.verify('masquerade', owner, 'masquerade');
  }

  addPortMappings(owner: Owner, mappings: readonly PortMapping[], options: PortMappingOptions): string[] {
    const elements: RuleElement[] = [];
    const comment = ownerComment(owner);
    const hairpin = new Set<string>();
    for (const mapping of mappings) {
      if (!protocols.has(mapping.protocol)) throw new HostError(`invalid protocol ${JSON.stringify(mapping.protocol)}`, 'invalid protocol');
      const container = address(mapping.containerIP);
      const family = container.family;
      const service = `${mapping.protocol} . ${port(mapping.hostPort)}`;
      const target = `${container.text} . ${port(mapping.containerPort)}`;
      if (mapping.hostIP !== undefined) {
        const host = address(mapping.hostIP);
        const key = `${host.text} . ${service}`;
        elements.push({ set: `hp_addr${family}`, element: `${key} comment "${comment}" : ${target}`, key });
      } else {
        elements.push({ set: `hp_any${family}`, element: `${service} comment "${comment}" : ${target}`, key: service });
      }
      if (options.snat) {
        for (const source of options.hairpinSubnets.map(subnet).filter((entry) => entry.family === family)) hairpin.add(`${family}|${source.text} . ${container.text}`);
        if (family === 4) hairpin.add(`4|127.0.0.0/8 . ${container.text}`);
      }
    }
    for (const entry of hairpin) {
      const [family, pair] = entry.split('|') as [string, string];
      elements.push({ set: `hairpin${family}`, element: pair, key: pair });
    }
    if (options.snat && options.hostInterface && mappings.some((mapping) => !mapping.containerIP.includes(':'))) {
      // Lets the node reach a mapping at 127.0.0.1: the translated packet leaves
      // through the bridge with a loopback source until it is masqueraded.
      enableRouteLocalnet(options.hostInterface);
    }
    try {
      this.install('portmap', { ...owner, elements, masquerade: [], portMappings: [...mappings] }, isMapElement);
    } catch (error) {
      if (error instanceof HostError && /File exists/.test(error.reason)) {
        throw new PortConflictError(`a requested host port is already mapped to another container: ${this.describeConflicts(owner, mappings)}`);
      }
      throw error;
    }
    return this.flushUdp(mappings);
  }

  private describeConflicts(owner: Owner, mappings: readonly PortMapping[]): string {
    const taken: string[] = [];
    for (const rules of listAttachmentRules(this.stateDir, 'portmap')) {
      if (rules.network === owner.network && rules.containerId === owner.containerId && rules.ifname === owner.ifname) continue;
      for (const theirs of rules.portMappings) {
        for (const ours of mappings) {
          if (theirs.hostPort === ours.hostPort && theirs.protocol === ours.protocol && (theirs.hostIP ?? '') === (ours.hostIP ?? '')) {
            taken.push(`${ours.hostIP ?? '*'}:${ours.hostPort}/${ours.protocol} is held by ${ownerComment(rules)}`);
          }
        }
      }
    }
    return taken.length > 0 ? [...new Set(taken)].join(', ') : mappings.map((m) => `${m.hostIP ?? '*'}:${m.hostPort}/${m.protocol}`).join(', ');
  }

  private flushUdp(mappings: readonly PortMapping[]): string[] {
    return flushUdpEntries(mappings.filter((mapping) => mapping.protocol === 'udp').map((mapping) => mapping.hostPort));
  }

  removePortMappings(owner: Owner): string[] {
    const rules = this.uninstall('portmap', owner);
    return rules ? this.flushUdp(rules.portMappings) : [];
  }

  checkPortMappings(owner: Owner): void {
    this.verify('portmap', owner, 'port mapping');
  }

  collectGarbage(network: string, kind: RuleOwner, keep: readonly Owner[]): Owner[] {
    const removed: Owner[] = [];
    for (const rules of listAttachmentRules(this.stateDir, kind, network)) {
      if (keep.some((owner) => owner.containerId === rules.containerId && owner.ifname === rules.ifname)) continue;
      this.uninstall(kind, rules);
      removed.push({ network: rules.network, containerId: rules.containerId, ifname: rules.ifname });
    }
    return removed;
  }
}
