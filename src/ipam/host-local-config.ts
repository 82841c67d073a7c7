import type { CniArgs } from '../cni/args.js';
import { isJsonObject, type NetConf } from '../cni/config.js';
import { CniError, ErrorCode } from '../cni/errors.js';
import { parseResult, type Route } from '../cni/result.js';
import { validateDirectory } from '../cni/validate.js';
import { parseAddress, parsePrefix, type Address } from '../util/ip.js';
import { quote } from '../util/quote.js';
import { parseRangeSets, type RangeSet } from './ranges.js';

export const defaultDataDir = '/var/lib/cni/networks';

export interface HostLocalConfig {
  network: string;
  rangeSets: RangeSet[];
  routes: Route[];
  dataDir: string;
  resolvConf?: string;
  requested: Address[];
}

function invalid(message: string): CniError {
  return new CniError(ErrorCode.InvalidConfig, message);
}

// Requests may carry a prefix length ("10.0.0.5/24"); only the address counts, but the
// whole text must be a valid CIDR, as the reference requires.
function parseRequest(text: string): Address | undefined {
  if (!text.includes('/')) return parseAddress(text);
  const prefix = parsePrefix(text);
  return prefix && { family: prefix.family, value: prefix.address };
}

function requestedAddress(text: unknown, where: string): Address {
  const address = typeof text === 'string' ? parseRequest(text) : undefined;
  if (!address) throw invalid(`${where}: ${quote(text)} is not an IP address`);
  return address;
}

// Requested addresses, from the three places runtimes put them: CNI_ARGS IP=a,b,
// args.cni.ips, and runtimeConfig.ips (the "ips" capability).
function requestedAddresses(conf: NetConf, cniArgs: CniArgs): Address[] {
  const requested: Address[] = [];
  const fromArgs = cniArgs.get('IP');
  if (fromArgs) for (const text of fromArgs.split(',')) requested.push(requestedAddress(text.trim(), 'CNI_ARGS IP'));
  const cni = conf.args['cni'];
  if (isJsonObject(cni) && cni['ips'] !== undefined) {
    if (!Array.isArray(cni['ips'])) throw invalid('args.cni.ips must be a list');
    for (const text of cni['ips']) requested.push(requestedAddress(text, 'args.cni.ips'));
  }
  const runtimeIps = conf.runtimeConfig['ips'];
  if (runtimeIps !== undefined) {
    if (!Array.isArray(runtimeIps)) throw invalid('runtimeConfig.ips must be a list');
    for (const text of runtimeIps) requested.push(requestedAddress(text, 'runtimeConfig.ips'));
  }
  return requested;
}

export function parseHostLocalConfig(conf: NetConf, cniArgs: CniArgs): HostLocalConfig {
  const ipam = conf.ipam;
  if (!ipam) throw invalid('network configuration has no "ipam" section');
  let rawSets: unknown[] = [];
  if (ipam['ranges'] !== undefined) {
    if (!Array.isArray(ipam['ranges'])) throw invalid('ipam.ranges must be a list of range sets');
    rawSets = [...ipam['ranges']];
  }
  // The older single-range form (ipam.subnet ...) comes first, as the reference orders it.
  if (ipam['subnet'] !== undefined) {
    rawSets.unshift([{ subnet: ipam['subnet'], rangeStart: ipam['rangeStart'], rangeEnd: ipam['rangeEnd'], gateway: ipam['gateway'] }]);
  }
  const runtimeRanges = conf.runtimeConfig['ipRanges'];
  let where = 'ipam.ranges';
  if (Array.isArray(runtimeRanges) && runtimeRanges.length > 0) {
    rawSets = runtimeRanges;
    where = 'runtimeConfig.ipRanges';
  }
  if (rawSets.length === 0) throw invalid('ipam has no address ranges: set "ranges" (or "subnet")');
  const rangeSets = parseRangeSets(rawSets, where);

  let routes: Route[] = [];
  if (ipam['routes'] !== undefined) {
    if (!Array.isArray(ipam['routes'])) throw invalid('ipam.routes must be a list');
    try {
      routes = parseResult({ routes: ipam['routes'] }).routes ?? [];
    } catch (error) {
      throw invalid(`ipam.routes: ${(error as Error).message}`);
    }
    for (const route of routes) {
      if (!route.dst.includes('/')) throw invalid(`ipam.routes: ${quote(route.dst)} is not a CIDR`);
    }
  }
  const dataDir = validateDirectory(ipam['dataDir'] ?? defaultDataDir, 'ipam.dataDir');
  const config: HostLocalConfig = { network: conf.name, rangeSets, routes, dataDir, requested: requestedAddresses(conf, cniArgs) };
  const resolvConf = ipam['resolvConf'];
  if (resolvConf !== undefined && resolvConf !== '') {
    if (typeof resolvConf !== 'string') throw invalid('ipam.resolvConf must be a path');
    config.resolvConf = resolvConf;
  }
  return config;
}
