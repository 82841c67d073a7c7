import { CniError, ErrorCode } from '../../cni/errors.js';
import type { IpConfig, Result, Route } from '../../cni/result.js';
import { formatAddress, formatCidr, parseAddress, parsePrefix, type Family, type Prefix } from '../../util/ip.js';
import type { BridgeConfig } from './config.js';

// The addressing plan for one container, derived from the IPAM result and the
// bridge's gateway options; pure, so it is unit-testable without a kernel.
export interface AddressPlan {
  ips: IpConfig[];
  // Addresses (CIDR) the bridge carries as the containers' gateway.
  gatewayCidrs: string[];
  routes: Route[];
  subnets: Array<{ address: string; subnet: string }>;
  families: Family[];
}

function prefixOf(ip: IpConfig): Prefix {
  const prefix = parsePrefix(ip.address);
  if (!prefix) throw new CniError(ErrorCode.DecodingFailure, `IPAM returned an address that is not a CIDR: ${ip.address}`);
  return prefix;
}

export function planAddresses(ipam: Result, config: BridgeConfig): AddressPlan {
  if (!ipam.ips || ipam.ips.length === 0) throw new CniError(ErrorCode.InvalidConfig, 'IPAM returned no IP addresses');
  const plan: AddressPlan = { ips: [], gatewayCidrs: [], routes: [], subnets: [], families: [] };
  const gatewayByFamily = new Map<Family, string>();
  for (const ip of ipam.ips) {
    const prefix = prefixOf(ip);
    const family = prefix.family;
    let gateway = ip.gateway;
    if (gateway === undefined && config.isGateway) gateway = formatAddress({ family, value: prefix.network + 1n });
    const entry: IpConfig = { address: ip.address, interface: 2 };
    if (gateway !== undefined) {
      entry.gateway = gateway;
      if (!gatewayByFamily.has(family)) gatewayByFamily.set(family, gateway);
      const parsedGateway = parseAddress(gateway);
      if (config.isGateway && parsedGateway) plan.gatewayCidrs.push(formatCidr(parsedGateway, prefix.length));
    }
    plan.ips.push(entry);
    plan.subnets.push({ address: formatAddress({ family, value: prefix.address }), subnet: formatCidr({ family, value: prefix.network }, prefix.length) });
    if (!plan.families.includes(family)) plan.families.push(family);
  }
  for (const route of ipam.routes ?? []) plan.routes.push({ ...route });
  if (config.isDefaultGateway) {
    for (const [family, gateway] of gatewayByFamily) {
      const defaultDst = family === 4 ? '0.0.0.0/0' : '::/0';
      const existing = plan.routes.find((route) => route.dst === defaultDst);
      if (existing?.gw !== undefined && existing.gw !== gateway) {
        throw new CniError(ErrorCode.InvalidConfig, `isDefaultGateway conflicts with the IPAM default route via ${existing.gw}`);
      }
      if (!existing) plan.routes.push({ dst: defaultDst, gw: gateway });
    }
  }
  return plan;
}

// A route without a gateway goes via the container's gateway of its family, as the
// reference plugins configure it.
export function routeGateway(route: Route, ips: readonly IpConfig[]): string | undefined {
  if (route.gw !== undefined) return route.gw;
  const family = route.dst.includes(':') ? 6 : 4;
  return ips.find((ip) => (ip.address.includes(':') ? 6 : 4) === family && ip.gateway !== undefined)?.gateway;
}
