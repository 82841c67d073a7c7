import { goField, isJsonObject, type NetConf } from '../../cni/config.js';
import { CniError, ErrorCode } from '../../cni/errors.js';
import { addressFamily, type Result } from '../../cni/result.js';
import { validateDirectory, validateInterfaceName } from '../../cni/validate.js';
import { defaultStateDir, type PortMapping } from '../../firewall/state.js';
import { formatAddress, formatCidr, parseAddress, parsePrefix, type Family } from '../../util/ip.js';
import { quote } from '../../util/quote.js';

export interface RequestedMapping {
  hostPort: number;
  containerPort: number;
  protocol: PortMapping['protocol'];
  // Undefined: every local address of both families; a wildcard (0.0.0.0 or ::)
  // keeps its family.
  hostIP?: string;
  family?: Family;
}

export interface PortmapConfig {
  snat: boolean;
  stateDir: string;
  mappings: RequestedMapping[];
}

function invalid(message: string): CniError {
  return new CniError(ErrorCode.InvalidConfig, message);
}

function portNumber(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) throw invalid(`${where} must be a port number from 1 to 65535, got ${quote(value)}`);
  return value;
}

// Options of the reference portmap that only make sense with its iptables rules.
const unsupportedKeys = ['conditionsV4', 'conditionsV6', 'markMasqBit', 'externalSetMarkChain', 'masqAll', 'backend'];

function parseMapping(raw: unknown, index: number): RequestedMapping {
  const where = `runtimeConfig.portMappings[${index}]`;
  if (!isJsonObject(raw)) throw invalid(`${where} must be an object`);
  const protocol = (goField(raw, 'protocol') || 'tcp') as unknown;
  if (typeof protocol !== 'string' || !['tcp', 'udp', 'sctp'].includes(protocol.toLowerCase())) {
    throw invalid(`${where}.protocol must be tcp, udp or sctp, got ${quote(protocol)}`);
  }
  const mapping: RequestedMapping = {
    hostPort: portNumber(goField(raw, 'hostPort'), `${where}.hostPort`),
    containerPort: portNumber(goField(raw, 'containerPort'), `${where}.containerPort`),
    protocol: protocol.toLowerCase() as PortMapping['protocol'],
  };
  const hostIP = goField(raw, 'hostIP');
  if (hostIP !== undefined && hostIP !== null && hostIP !== '') {
    const address = typeof hostIP === 'string' ? parseAddress(hostIP) : undefined;
    if (!address) throw invalid(`${where}.hostIP must be an IP address, got ${quote(hostIP)}`);
    mapping.family = address.family;
    if (address.value !== 0n) mapping.hostIP = formatAddress(address);
  }
  return mapping;
}

// DEL, GC and STATUS remove or report by owner: they do not read the mappings, so a
// request that ADD would refuse can never keep a container from being torn down.
export function parsePortmapConfig(conf: NetConf, options: { mappings: boolean } = { mappings: true }): PortmapConfig {
  const present = unsupportedKeys.filter((key) => conf.raw[key] !== undefined && conf.raw[key] !== null);
  if (present.length > 0) throw new CniError(ErrorCode.UnsupportedField, `trestle-portmap does not support ${present.join(', ')}`);
  const snat = conf.raw['snat'] ?? true;
  if (typeof snat !== 'boolean') throw invalid('"snat" must be true or false');
  const stateDir = validateDirectory(conf.raw['stateDir'] ?? defaultStateDir, '"stateDir"');
  if (!options.mappings) return { snat, stateDir, mappings: [] };
  const rawMappings = conf.runtimeConfig['portMappings'] ?? [];
  if (!Array.isArray(rawMappings)) throw invalid('runtimeConfig.portMappings must be a list');
  const mappings = rawMappings.map(parseMapping);
  const seen = new Set<string>();
  for (const mapping of mappings) {
    const key = `${mapping.hostIP ?? `any${mapping.family ?? ''}`}:${mapping.hostPort}/${mapping.protocol}`;
    if (seen.has(key)) throw invalid(`host port ${mapping.hostPort}/${mapping.protocol} is requested twice`);
    seen.add(key);
  }
  return { snat, stateDir, mappings };
}

export interface ContainerAddresses {
  byFamily: Map<Family, string>;
  subnets: string[];
  hostInterface?: string;
}

// The container's addresses as the previous plugin reported them: those on sandbox
// interfaces (or not tied to an interface), first of each family. The host interface
// (the bridge) becomes a sysctl path (route_localnet): a name that is not a valid
// interface name ("all", "../x") is refused as invalid configuration.
export function containerAddresses(previous: Result): ContainerAddresses {
  const interfaces = previous.interfaces ?? [];
  const found: ContainerAddresses = { byFamily: new Map(), subnets: [] };
  for (const ip of previous.ips ?? []) {
    const iface = ip.interface === undefined ? undefined : interfaces[ip.interface];
    if (iface && iface.sandbox === undefined) continue;
    const prefix = parsePrefix(ip.address);
    if (!prefix) continue;
    const family = addressFamily(ip.address);
    if (!found.byFamily.has(family)) found.byFamily.set(family, formatAddress({ family, value: prefix.address }));
    found.subnets.push(formatCidr({ family, value: prefix.network }, prefix.length));
  }
  const hostIndex = interfaces.findIndex((iface) => iface.sandbox === undefined || iface.sandbox === '');
  const host = interfaces[hostIndex];
  if (host) {
    validateInterfaceName(host.name, `prevResult.interfaces[${hostIndex}].name`, ErrorCode.InvalidConfig);
    found.hostInterface = host.name;
  }
  return found;
}

// One concrete mapping per container address family the request applies to.
export function expandMappings(requested: readonly RequestedMapping[], container: ContainerAddresses): PortMapping[] {
  const mappings: PortMapping[] = [];
  for (const request of requested) {
    for (const [family, containerIP] of container.byFamily) {
      if (request.family !== undefined && request.family !== family) continue;
      const mapping: PortMapping = { hostPort: request.hostPort, containerIP, containerPort: request.containerPort, protocol: request.protocol };
      if (request.hostIP !== undefined) mapping.hostIP = request.hostIP;
      mappings.push(mapping);
    }
  }
  return mappings;
}
