import type { PortMapping } from './state.js';

// The firewall layer's contract. It knows nothing of CNI: plugins translate their
// configuration into these calls. One interface, one file per backend.
export interface Owner {
  network: string;
  containerId: string;
  ifname: string;
}

export interface MasqueradeAddress {
  // The container's address, and the subnet it shares with its neighbours: traffic
  // to that subnet (and to multicast) keeps its source address.
  address: string;
  subnet: string;
}

export interface PortMappingOptions {
  // Masquerade hairpin traffic (container to its own or a neighbour's host port) and
  // connections from the node's loopback, as the reference portmap's `snat` does.
  snat: boolean;
  // Subnets whose containers may reach the mapping through the node (hairpin).
  hairpinSubnets: string[];
  // Host interface that routes to the containers (gets route_localnet for 127.0.0.1).
  hostInterface?: string;
  // Host links the attachment is made of: when one is gone, the attachment was torn
  // down while this call waited, and no mapping may be left pointing at its address.
  requiredLinks?: string[];
}

export interface Firewall {
  addMasquerade(owner: Owner, addresses: readonly MasqueradeAddress[]): Promise<void>;
  removeMasquerade(owner: Owner): Promise<void>;
  checkMasquerade(owner: Owner): Promise<void>;
  addPortMappings(owner: Owner, mappings: readonly PortMapping[], options: PortMappingOptions): Promise<string[]>;
  removePortMappings(owner: Owner): Promise<string[]>;
  checkPortMappings(owner: Owner): Promise<void>;
  // Everything the attachment owns, of every kind (what DEL of the attachment's
  // addresses must remove first); returns warnings.
  removeAll(owner: Owner): Promise<string[]>;
  // Removes the rules of every attachment of `network` that is not in `keep`, damaged
  // records, and any element in the kernel that no attachment owns.
  collectGarbage(network: string, keep: readonly Owner[]): Promise<Owner[]>;
}

export class PortConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PortConflictError';
  }
}

export class MissingRulesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MissingRulesError';
  }
}

export class AttachmentGoneError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AttachmentGoneError';
  }
}
