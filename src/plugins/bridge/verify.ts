import { CniError, ErrorCode } from '../../cni/errors.js';
import type { PluginContext } from '../../cni/skel.js';
import { MissingRulesError } from '../../firewall/firewall.js';
import { NftablesFirewall } from '../../firewall/nftables.js';
import { listRoutes } from '../../host/addresses.js';
import { findLink } from '../../host/links.js';
import { ipamClient } from '../../ipam/client.js';
import { parseAddress, parsePrefix, formatAddress, formatPrefix } from '../../util/ip.js';
import { hostFailure } from '../failures.js';
import type { BridgeConfig } from './config.js';
import { requireContainerNamespace } from './namespace.js';
import { routeGateway } from './addressing.js';

function checkFailed(message: string): CniError {
  return new CniError(ErrorCode.CheckFailed, message);
}

function canonicalCidr(text: string): string {
  const prefix = parsePrefix(text);
  return prefix ? formatPrefix(prefix) : text;
}

function canonicalAddress(text: string | undefined): string | undefined {
  const address = text === undefined ? undefined : parseAddress(text);
  return address ? formatAddress(address) : text;
}

// CHECK: everything the ADD result says is still true on the host and in the container.
export async function verify(context: PluginContext, config: BridgeConfig): Promise<void> {
  const { invocation } = context;
  const previous = context.config.prevResult;
  if (!previous) throw new CniError(ErrorCode.InvalidConfig, 'CHECK needs the ADD result as "prevResult"');
  await ipamClient(context).check();
  requireContainerNamespace(invocation.netns);
  try {
    const bridge = await findLink(config.bridge);
    if (!bridge || bridge.kind !== 'bridge') throw checkFailed(`bridge ${config.bridge} is missing`);
    const interfaces = previous.interfaces ?? [];
    const containerIndex = interfaces.findIndex((iface) => iface.sandbox !== undefined && iface.name === invocation.ifname);
    if (containerIndex < 0) throw checkFailed(`prevResult lists no interface ${invocation.ifname} in a sandbox`);
    const hostVeth = interfaces.find((iface) => iface.sandbox === undefined && iface.name !== config.bridge);
    if (hostVeth) {
      const link = await findLink(hostVeth.name);
      if (!link) throw checkFailed(`host veth ${hostVeth.name} is missing`);
      if (link.master !== config.bridge) throw checkFailed(`host veth ${hostVeth.name} is not attached to ${config.bridge}`);
    }
    const container = await findLink(invocation.ifname, invocation.netns);
    if (!container) throw checkFailed(`interface ${invocation.ifname} is missing in ${invocation.netns}`);
    const expectedMac = interfaces[containerIndex]?.mac;
    if (expectedMac && expectedMac.toLowerCase() !== container.mac.toLowerCase()) {
      throw checkFailed(`interface ${invocation.ifname} has MAC ${container.mac}, expected ${expectedMac}`);
    }
    // With disableContainerInterface, ADD leaves the interface down without addresses
    // or routes on purpose: there is nothing of them to verify.
    const configured = !config.disableContainerInterface;
    const present = new Set(container.addresses.map((entry) => `${canonicalAddress(entry.address)}/${entry.prefixLength}`));
    const ips = configured ? (previous.ips ?? []).filter((ip) => ip.interface === undefined || ip.interface === containerIndex) : [];
    for (const ip of ips) {
      const prefix = parsePrefix(ip.address);
      const wanted = prefix ? `${formatAddress({ family: prefix.family, value: prefix.address })}/${prefix.length}` : ip.address;
      if (!present.has(wanted)) throw checkFailed(`address ${ip.address} is missing on ${invocation.ifname}`);
    }
    const routes = await listRoutes(invocation.netns);
    for (const route of configured ? (previous.routes ?? []) : []) {
      const gateway = canonicalAddress(routeGateway(route, previous.ips ?? []));
      const found = routes.some((entry) => canonicalCidr(entry.dst) === canonicalCidr(route.dst) && (gateway === undefined || canonicalAddress(entry.gateway) === gateway));
      if (!found) throw checkFailed(`route to ${route.dst}${gateway ? ` via ${gateway}` : ''} is missing in ${invocation.netns}`);
    }
    if (config.ipMasq) {
      await new NftablesFirewall(config.stateDir).checkMasquerade({ network: context.config.name, containerId: invocation.containerId, ifname: invocation.ifname });
    }
  } catch (error) {
    if (error instanceof MissingRulesError) throw checkFailed(error.message);
    hostFailure(error);
  }
}
