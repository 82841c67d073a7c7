import { join } from 'node:path';
import { flushUdpEntries } from '../host/conntrack.js';
import { HostError } from '../host/errors.js';
import { runNftScript } from '../host/nft.js';
import { linkPresent } from '../host/presence.js';
import { enableRouteLocalnet } from '../host/sysctl.js';
import { formatAddress, formatPrefix, parseAddress, parsePrefix, prefixContains, type Address, type Family, type Prefix } from '../util/ip.js';
import { debrisGraceMs, olderThan } from '../util/debris.js';
import { removeFile } from '../util/files.js';
import { withDirectoryLock } from '../util/lock.js';
import { AttachmentGoneError, MissingRulesError, PortConflictError, type Firewall, type MasqueradeAddress, type Owner, type PortMappingOptions } from './firewall.js';
import { listKernelElements } from './kernel.js';
import { OwnerIndex } from './owners.js';
import { isMapSet, sharedStructures, table } from './ruleset.js';
import {
  firewallDir,
  listAttachmentRules,
  listNetworks,
  readAttachmentRules,
  removeAttachmentRules,
  ruleOwners,
  scanAttachmentRules,
  stateFileName,
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
function address(text: string): { family: Family; text: string; parsed: Address } {
  const parsed = parseAddress(text);
  if (!parsed) throw new HostError(`invalid IP address ${JSON.stringify(text.slice(0, 64))}`, 'invalid address');
  return { family: parsed.family, text: formatAddress(parsed), parsed };
}

function subnet(text: string): { family: Family; text: string; prefix: Prefix } {
  const parsed = parsePrefix(text);
  if (!parsed) throw new HostError(`invalid subnet ${JSON.stringify(text.slice(0, 64))}`, 'invalid subnet');
  return { family: parsed.family, text: formatPrefix(parsed), prefix: parsed };
}

function port(value: number): string {
  if (!Number.isInteger(value) || value < 1 || value > 65535) throw new HostError(`invalid port ${JSON.stringify(value)}`, 'invalid port');
  return String(value);
}

// For people reading `nft list ruleset`: only characters that need no quoting rules,
// and well inside nft's 128-byte comment limit.
function ownerComment(owner: Owner): string {
  return `${owner.network}/${owner.containerId}/${owner.ifname}`.replace(/[^A-Za-z0-9_./-]/g, '_').slice(0, 120);
}

function describeOwner(owner: Owner): string {
  return `${owner.network}/${owner.containerId.slice(0, 64)}/${owner.ifname}`;
}

function addElement(element: RuleElement, create = false): string {
  return `${create ? 'create' : 'add'} element ${table} ${element.set} { ${element.element} }`;
}

// Deleting an element that is already gone fails the whole transaction; adding it
// first (a no-op when present) makes removal idempotent.
function removeElement(element: RuleElement): string[] {
  return [addElement(element), `delete element ${table} ${element.set} { ${element.key} }`];
}

function isFileExists(error: unknown): boolean {
  return error instanceof HostError && /File exists/.test(error.reason);
}

function sameOwner(a: Owner, b: Owner): boolean {
  return a.network === b.network && a.containerId === b.containerId && a.ifname === b.ifname;
}

// Each change to the shared table, and to the records and the owner index that
// describe it, happens under one lock per state directory: the check "does anyone
// else own this element?" and the nft transaction that acts on the answer must not
// interleave with another attachment's. Records are written before the kernel is
// changed and removed after, so a DEL or GC after a kill always knows what to remove.
export class NftablesFirewall implements Firewall {
  private readonly dir: string;
  private readonly owners: OwnerIndex;

  constructor(private readonly stateDir: string) {
    this.dir = firewallDir(stateDir);
    this.owners = new OwnerIndex(this.dir);
  }

  private locked<T>(work: () => Promise<T>): Promise<T> {
    return withDirectoryLock(this.dir, join(this.dir, 'trestle.lock'), work);
  }

  // Only this container's elements, as one transaction; the shared table, sets and
  // rules are written too only when one of them is missing (first use on a node, or
  // someone flushed the ruleset). Re-asserting them every time cost ~12 ms of the
  // ~16 ms an ADD spent in nft (measured here).
  private async apply(lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return;
    try {
      await runNftScript(`${lines.join('\n')}\n`);
    } catch (error) {
      if (!(error instanceof HostError) || !error.notFound) throw error;
      await runNftScript(`${[...sharedStructures(), ...lines].join('\n')}\n`);
    }
  }

  private ownerId(kind: RuleOwner, owner: Owner): string {
    return `${owner.network}/${stateFileName(kind, owner)}`;
  }

  private async install(kind: RuleOwner, rules: AttachmentRules): Promise<void> {
    const id = this.ownerId(kind, rules);
    writeAttachmentRules(this.stateDir, kind, rules);
    this.owners.claim(id, rules.elements);
    // A map key is created, not added, so that a host port another attachment holds
    // fails the transaction instead of being taken over silently.
    const lines = rules.elements.map((element) => addElement(element, isMapSet(element.set)));
    try {
      try {
        await this.apply(lines);
      } catch (error) {
        // The key may be held by an element nobody owns (an nft process that outlived
        // a killed plugin committed it): that one is garbage, not a conflict.
        if (!isFileExists(error) || !rules.elements.some((element) => isMapSet(element.set) && !this.owners.heldByOthers(id, element))) throw error;
        await this.reconcileKernel();
        await this.apply(lines);
      }
    } catch (error) {
      this.owners.release(id, rules.elements);
      removeAttachmentRules(this.stateDir, kind, rules);
      throw error;
    }
  }

  private async uninstall(kind: RuleOwner, owner: Owner): Promise<AttachmentRules | undefined> {
    const reading = readAttachmentRules(this.stateDir, kind, owner);
    if (reading.state === 'absent') {
      // A writer killed before its rename leaves only the temporary record, and
      // nothing in the kernel yet: the record is written first.
      removeAttachmentRules(this.stateDir, kind, owner);
      return undefined;
    }
    const id = this.ownerId(kind, owner);
    const elements = reading.state === 'present' ? reading.rules.elements : this.markedElements(id);
    await this.removeElements(id, elements);
    removeAttachmentRules(this.stateDir, kind, owner);
    return reading.state === 'present' ? reading.rules : undefined;
  }

  // The owner's elements as the index remembers them, for a record that is unreadable.
  private markedElements(id: string): RuleElement[] {
    const elements: RuleElement[] = [];
    for (const { marker } of this.owners.markers()) if (marker?.owner === id) elements.push(marker.element);
    return elements;
  }

  // Drops the owner's claims; elements nobody else owns leave the kernel.
  private async removeElements(id: string, elements: readonly RuleElement[]): Promise<void> {
    const orphaned = this.owners.release(id, elements);
    try {
      await this.apply(orphaned.flatMap(removeElement));
    } catch (error) {
      // Re-adding a map key fails when the kernel holds it with another target (an
      // element nobody owns): removing every unowned element covers ours too.
      if (!isFileExists(error)) throw error;
      await this.reconcileKernel();
    }
  }

  // Deletes every element of our sets and maps that no attachment owns.
  private async reconcileKernel(): Promise<RuleElement[]> {
    const unowned = (await listKernelElements(table))
      .filter((element) => !this.owners.isOwned(element.set, element.key))
      .map((element) => ({ set: element.set, key: element.key, element: element.key }));
    if (unowned.length > 0) await runNftScript(`${unowned.map((element) => `delete element ${table} ${element.set} { ${element.key} }`).join('\n')}\n`);
    return unowned;
  }

  private async verify(kind: RuleOwner, owner: Owner, what: string): Promise<void> {
    const reading = readAttachmentRules(this.stateDir, kind, owner);
    if (reading.state === 'absent') throw new MissingRulesError(`no ${what} rules are recorded for ${describeOwner(owner)}`);
    if (reading.state === 'unreadable') throw new MissingRulesError(`the ${what} record of ${describeOwner(owner)} is damaged (${reading.file})`);
    if (reading.rules.elements.length === 0) return;
    // A dry-run deletion succeeds only if every element is present.
    const script = reading.rules.elements.map((element) => `delete element ${table} ${element.set} { ${element.key} }`).join('\n');
    try {
      await runNftScript(`${script}\n`, { dryRun: true });
    } catch (error) {
      throw new MissingRulesError(`${what} rules of ${describeOwner(owner)} are missing from the ruleset: ${(error as Error).message}`);
    }
  }

  async addMasquerade(owner: Owner, addresses: readonly MasqueradeAddress[]): Promise<void> {
    const elements: RuleElement[] = [];
    for (const entry of addresses) {
      const container = address(entry.address);
      const local = subnet(entry.subnet);
      const family = container.family;
      elements.push({ set: `masq${family}`, element: container.text, key: container.text });
      // Per subnet, shared by its containers: the rule looks here only for sources
      // in masq, so (subnet . x) keeps exactly the addresses (container . x) kept.
      for (const destination of [local.text, multicast[family]]) {
        const pair = `${local.text} . ${destination}`;
        elements.push({ set: `masqskip${family}`, element: pair, key: pair });
      }
    }
    const rules: AttachmentRules = { ...owner, elements, masquerade: addresses.map((entry) => entry.address), portMappings: [] };
    await this.locked(() => this.install('masquerade', rules));
  }

  async removeMasquerade(owner: Owner): Promise<void> {
    await this.locked(() => this.uninstall('masquerade', owner));
  }

  async checkMasquerade(owner: Owner): Promise<void> {
    await this.verify('masquerade', owner, 'masquerade');
  }

  async addPortMappings(owner: Owner, mappings: readonly PortMapping[], options: PortMappingOptions): Promise<string[]> {
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
        // The container, and (source . its subnet) pairs that its network's
        // containers share; a container outside every subnet of its network (not
        // one host-local gives) is paired by itself.
        hairpin.add(`dst${family}|${container.text}`);
        const sources = options.hairpinSubnets.map(subnet).filter((entry) => entry.family === family);
        const own = sources.find((entry) => prefixContains(entry.prefix, container.parsed))?.text ?? container.text;
        for (const source of sources) hairpin.add(`net${family}|${source.text} . ${own}`);
        if (family === 4) hairpin.add(`net4|127.0.0.0/8 . ${own}`);
      }
    }
    for (const entry of hairpin) {
      const [set, key] = entry.split('|') as [string, string];
      elements.push({ set: `hairpin${set}`, element: key, key });
    }
    const rules: AttachmentRules = { ...owner, elements, masquerade: [], portMappings: [...mappings] };
    await this.locked(async () => {
      const gone = (options.requiredLinks ?? []).filter((name) => !linkPresent(name));
      if (gone.length > 0) {
        throw new AttachmentGoneError(`interface ${gone.join(', ')} of ${describeOwner(owner)} no longer exists: the attachment was deleted while this ADD ran`);
      }
      if (options.snat && options.hostInterface && mappings.some((mapping) => !mapping.containerIP.includes(':'))) {
        // Lets the node reach a mapping at 127.0.0.1: the translated packet leaves
        // through the bridge with a loopback source until it is masqueraded.
        enableRouteLocalnet(options.hostInterface);
      }
      try {
        await this.install('portmap', rules);
      } catch (error) {
        if (isFileExists(error)) throw new PortConflictError(`a requested host port is already mapped to another container: ${this.describeConflicts(owner, mappings)}`);
        throw error;
      }
    });
    return this.flushUdp(mappings);
  }

  private describeConflicts(owner: Owner, mappings: readonly PortMapping[]): string {
    const taken: string[] = [];
    for (const rules of listAttachmentRules(this.stateDir, 'portmap')) {
      if (sameOwner(rules, owner)) continue;
      for (const theirs of rules.portMappings) {
        for (const ours of mappings) {
          if (theirs.hostPort === ours.hostPort && theirs.protocol === ours.protocol && (theirs.hostIP ?? '') === (ours.hostIP ?? '')) {
            taken.push(`${ours.hostIP ?? '*'}:${ours.hostPort}/${ours.protocol} is held by ${describeOwner(rules)}`);
          }
        }
      }
    }
    return taken.length > 0 ? [...new Set(taken)].join(', ') : mappings.map((m) => `${m.hostIP ?? '*'}:${m.hostPort}/${m.protocol}`).join(', ');
  }

  private flushUdp(mappings: readonly PortMapping[]): Promise<string[]> {
    return flushUdpEntries(mappings.filter((mapping) => mapping.protocol === 'udp').map((mapping) => mapping.hostPort));
  }

  async removePortMappings(owner: Owner): Promise<string[]> {
    const rules = await this.locked(() => this.uninstall('portmap', owner));
    return rules ? this.flushUdp(rules.portMappings) : [];
  }

  async checkPortMappings(owner: Owner): Promise<void> {
    await this.verify('portmap', owner, 'port mapping');
  }

  async removeAll(owner: Owner): Promise<string[]> {
    const removed = await this.locked(async () => {
      const records: Array<AttachmentRules | undefined> = [];
      for (const kind of ruleOwners) records.push(await this.uninstall(kind, owner));
      return records;
    });
    return this.flushUdp(removed.flatMap((rules) => rules?.portMappings ?? []));
  }

  async collectGarbage(network: string, keep: readonly Owner[]): Promise<Owner[]> {
    const removed: Owner[] = [];
    await this.locked(async () => {
      for (const kind of ruleOwners) {
        const listing = scanAttachmentRules(this.stateDir, kind, network);
        for (const rules of listing.rules) {
          if (keep.some((owner) => sameOwner(owner, rules))) continue;
          await this.uninstall(kind, rules);
          removed.push({ network: rules.network, containerId: rules.containerId, ifname: rules.ifname });
        }
        for (const file of listing.unreadable) await this.removeDamagedRecord(network, file);
        for (const file of listing.temporary) if (olderThan(file, debrisGraceMs)) removeFile(file);
      }
      this.checkIndex();
      await this.reconcileKernel();
    });
    return removed;
  }

  private async removeDamagedRecord(network: string, file: string): Promise<void> {
    const id = `${network}/${file.slice(file.lastIndexOf('/') + 1)}`;
    await this.removeElements(id, this.markedElements(id));
    removeFile(file);
  }

  // Markers that are damaged, or whose owner has no record any more, own nothing.
  private checkIndex(): void {
    const records = new Set<string>();
    for (const name of listNetworks(this.stateDir)) {
      for (const kind of ruleOwners) for (const rules of listAttachmentRules(this.stateDir, kind, name)) records.add(this.ownerId(kind, rules));
    }
    for (const { path, marker } of this.owners.markers()) {
      if (!marker || !records.has(marker.owner)) this.owners.removeMarker(path);
    }
    this.owners.pruneEmpty();
  }
}
