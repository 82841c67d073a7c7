import type { IpOperation } from './ip.js';

export function replaceAddress(cidr: string, device: string, options: { noDad?: boolean } = {}): IpOperation {
  const tokens = ['addr', 'replace', cidr, 'dev', device];
  // Our addresses are unique by allocation; duplicate address detection would only
  // keep an IPv6 address "tentative" (unusable) for a second or more.
  if (options.noDad && cidr.includes(':')) tokens.push('nodad');
  return { tokens, what: `add address ${cidr} to ${device}` };
}

export function deleteAddress(cidr: string, device: string): IpOperation {
  return { tokens: ['addr', 'del', cidr, 'dev', device], what: `remove address ${cidr} from ${device}` };
}

export interface RouteSpec {
  dst: string;
  gw?: string;
  device: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export function addRoute(route: RouteSpec): IpOperation {
  // Batch lines take no -4/-6: the family follows from the destination.
  const tokens = ['route', 'add', route.dst];
  if (route.gw !== undefined) tokens.push('via', route.gw);
  tokens.push('dev', route.device);
  if (route.mtu !== undefined) tokens.push('mtu', String(route.mtu));
  if (route.advmss !== undefined) tokens.push('advmss', String(route.advmss));
  if (route.priority !== undefined) tokens.push('metric', String(route.priority));
  if (route.table !== undefined) tokens.push('table', String(route.table));
  if (route.scope !== undefined) tokens.push('scope', String(route.scope));
  return { tokens, what: `add route ${route.dst}${route.gw ? ` via ${route.gw}` : ''} on ${route.device}` };
}

export interface RouteEntry {
  dst: string;
  gateway?: string;
  dev?: string;
  table?: string;
}

// The query that lists one family's routes inside an `ip -batch` (which accepts no
// -4/-6); only this form answered for IPv6 in iproute2 6.1.
export function routeQuery(family: 4 | 6): IpOperation {
  return { tokens: ['route', 'show', 'table', 'all', 'root', family === 4 ? '0.0.0.0/0' : '::/0'], what: `show IPv${family} routes` };
}

// Answers of `ip -j route show` for the main table: "default" stands for 0.0.0.0/0 or ::/0.
export function parseRoutes(json: unknown[], family: 4 | 6): RouteEntry[] {
  const entries = json as Array<{ dst: string; gateway?: string; dev?: string; table?: string }>;
  return entries.filter((entry) => entry.table === undefined || entry.table === 'main').map((entry) => {
    const route: RouteEntry = { dst: entry.dst === 'default' ? (family === 4 ? '0.0.0.0/0' : '::/0') : entry.dst };
    if (entry.gateway !== undefined) route.gateway = entry.gateway;
    if (entry.dev !== undefined) route.dev = entry.dev;
    return route;
  });
}
