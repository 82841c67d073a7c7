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
}

export interface Firewall {
  addMasquerade(owner: Owner, addresses: readonly MasqueradeAddress[]): void;
  removeMasquerade(owner: Owner): void;
  checkMasquerade(owner: Owner): void;
  addPortMappings(owner: Owner, mappings: readonly PortMapping[], options: PortMappingOptions): string[];
  removePortMappings(owner: Owner): string[];
  checkPortMappings(owner: Owner): void;
  // Removes the rules of every attachment of `network` that is not in `keep`.
  collectGarbage(network: string, kind: 'masquerade' | 'portmap', keep: readonly Owner[]): Owner[];
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
