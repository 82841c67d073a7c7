import { CniError, ErrorCode } from './errors.js';
import { versionAtLeast } from './version.js';

// One model for every version: the 1.1 shape. Older shapes are produced on output
// and accepted on input (prevResult, delegated IPAM results).
export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface IpConfig {
  address: string;
  gateway?: string;
  interface?: number;
}

export interface Route {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface Result {
  interfaces?: Interface[];
  ips?: IpConfig[];
  routes?: Route[];
  dns?: Dns;
}

type Json = Record<string, unknown>;

const route11Fields = ['mtu', 'advmss', 'priority', 'table', 'scope'] as const;
const interface11Fields = ['mtu', 'socketPath', 'pciID'] as const;

export function addressFamily(cidrOrIp: string): 4 | 6 {
  return cidrOrIp.includes(':') ? 6 : 4;
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function decodeError(what: string): CniError {
  return new CniError(ErrorCode.DecodingFailure, `cannot decode result: ${what}`);
}

function stringField(source: Json, key: string, where: string, required: boolean): string | undefined {
  const value = source[key];
  if (value === undefined || value === null || (value === '' && !required)) {
    if (required) throw decodeError(`${where}.${key} is missing`);
    return undefined;
  }
  if (typeof value !== 'string') throw decodeError(`${where}.${key} must be a string`);
  return value;
}

function numberField(source: Json, key: string, where: string): number | undefined {
  const value = source[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value)) throw decodeError(`${where}.${key} must be an integer`);
  return value;
}

function stringList(source: Json, key: string, where: string): string[] | undefined {
  const value = source[key];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) throw decodeError(`${where}.${key} must be a list of strings`);
  return value as string[];
}

function parseRoute(raw: unknown, where: string): Route {
  if (!isObject(raw)) throw decodeError(`${where} must be an object`);
  const route: Route = { dst: stringField(raw, 'dst', where, true) as string };
  const gw = stringField(raw, 'gw', where, false);
  if (gw !== undefined) route.gw = gw;
  for (const key of route11Fields) {
    const value = numberField(raw, key, where);
    if (value !== undefined) route[key] = value;
  }
  return route;
}

function parseDns(raw: unknown): Dns | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isObject(raw)) throw decodeError('dns must be an object');
  const dns: Dns = {};
  const nameservers = stringList(raw, 'nameservers', 'dns');
  const domain = stringField(raw, 'domain', 'dns', false);
  const search = stringList(raw, 'search', 'dns');
  const options = stringList(raw, 'options', 'dns');
  if (nameservers) dns.nameservers = nameservers;
  if (domain !== undefined) dns.domain = domain;
  if (search) dns.search = search;
  if (options) dns.options = options;
  return dns;
}

function parseLegacyIp(raw: unknown, where: string, result: Result): void {
  if (raw === undefined || raw === null) return;
  if (!isObject(raw)) throw decodeError(`${where} must be an object`);
  const ip: IpConfig = { address: stringField(raw, 'ip', where, true) as string };
  const gateway = stringField(raw, 'gateway', where, false);
  if (gateway !== undefined) ip.gateway = gateway;
  (result.ips ??= []).push(ip);
  const routes = raw['routes'];
  if (Array.isArray(routes)) {
    for (const [i, route] of routes.entries()) (result.routes ??= []).push(parseRoute(route, `${where}.routes[${i}]`));
  }
}

// Accepts a result of any version: 0.1.0/0.2.0 (ip4/ip6), 0.3.x/0.4.0 (ips[].version), 1.x.
export function parseResult(raw: unknown): Result {
  if (!isObject(raw)) throw decodeError('expected a JSON object');
  const result: Result = {};
  if (raw['ip4'] !== undefined || raw['ip6'] !== undefined) {
    parseLegacyIp(raw['ip4'], 'ip4', result);
    parseLegacyIp(raw['ip6'], 'ip6', result);
  }
  if (Array.isArray(raw['interfaces'])) {
    result.interfaces = raw['interfaces'].map((entry, i) => {
      const where = `interfaces[${i}]`;
      if (!isObject(entry)) throw decodeError(`${where} must be an object`);
      const iface: Interface = { name: stringField(entry, 'name', where, true) as string };
      const mac = stringField(entry, 'mac', where, false);
      const sandbox = stringField(entry, 'sandbox', where, false);
      const mtu = numberField(entry, 'mtu', where);
      const socketPath = stringField(entry, 'socketPath', where, false);
      const pciID = stringField(entry, 'pciID', where, false);
      if (mac !== undefined) iface.mac = mac;
      if (mtu !== undefined) iface.mtu = mtu;
      if (sandbox !== undefined) iface.sandbox = sandbox;
      if (socketPath !== undefined) iface.socketPath = socketPath;
      if (pciID !== undefined) iface.pciID = pciID;
      return iface;
    });
  }
  if (Array.isArray(raw['ips'])) {
    result.ips = raw['ips'].map((entry, i) => {
      const where = `ips[${i}]`;
      if (!isObject(entry)) throw decodeError(`${where} must be an object`);
      const ip: IpConfig = { address: stringField(entry, 'address', where, true) as string };
      const gateway = stringField(entry, 'gateway', where, false);
      const index = numberField(entry, 'interface', where);
      if (gateway !== undefined) ip.gateway = gateway;
      if (index !== undefined) ip.interface = index;
      return ip;
    });
  }
  if (Array.isArray(raw['routes'])) {
    result.routes = [...(result.routes ?? []), ...raw['routes'].map((route, i) => parseRoute(route, `routes[${i}]`))];
  }
  const dns = parseDns(raw['dns']);
  if (dns) result.dns = dns;
  return result;
}

function formatRoute(route: Route, withV11Fields: boolean): Json {
  const out: Json = { dst: route.dst };
  if (route.gw !== undefined) out['gw'] = route.gw;
  if (withV11Fields) {
    for (const key of route11Fields) if (route[key] !== undefined) out[key] = route[key];
  }
  return out;
}

// The reference plugins always print "dns" (an empty object when there is none);
// some runtimes' decoders expect the key.
function formatDns(dns: Dns | undefined): Json {
  return { ...dns };
}

function formatLegacy(result: Result, cniVersion: string): Json {
  const out: Json = { cniVersion };
  for (const family of [4, 6] as const) {
    const ip = result.ips?.find((entry) => addressFamily(entry.address) === family);
    if (!ip) continue;
    const legacy: Json = { ip: ip.address };
    if (ip.gateway !== undefined) legacy['gateway'] = ip.gateway;
    const routes = (result.routes ?? []).filter((route) => addressFamily(route.dst) === family).map((route) => formatRoute(route, false));
    if (routes.length > 0) legacy['routes'] = routes;
    out[`ip${family}`] = legacy;
  }
  out['dns'] = formatDns(result.dns);
  return out;
}

// Renders the result in the shape of the requested version.
export function formatResult(result: Result, cniVersion: string): Json {
  if (!versionAtLeast(cniVersion, '0.3.0')) return formatLegacy(result, cniVersion);
  const v1 = versionAtLeast(cniVersion, '1.0.0');
  const v11 = versionAtLeast(cniVersion, '1.1.0');
  const out: Json = { cniVersion };
  if (result.interfaces && result.interfaces.length > 0) {
    out['interfaces'] = result.interfaces.map((iface) => {
      const entry: Json = { name: iface.name };
      if (iface.mac !== undefined) entry['mac'] = iface.mac;
      if (v11) for (const key of interface11Fields) if (iface[key] !== undefined) entry[key] = iface[key];
      if (iface.sandbox !== undefined) entry['sandbox'] = iface.sandbox;
      return entry;
    });
  }
  if (result.ips && result.ips.length > 0) {
    out['ips'] = result.ips.map((ip) => {
      const entry: Json = {};
      if (!v1) entry['version'] = String(addressFamily(ip.address));
      entry['address'] = ip.address;
      if (ip.gateway !== undefined) entry['gateway'] = ip.gateway;
      if (ip.interface !== undefined) entry['interface'] = ip.interface;
      return entry;
    });
  }
  if (result.routes && result.routes.length > 0) out['routes'] = result.routes.map((route) => formatRoute(route, v11));
  out['dns'] = formatDns(result.dns);
  return out;
}
