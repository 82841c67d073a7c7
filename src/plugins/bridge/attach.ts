import { CniError, ErrorCode } from '../../cni/errors.js';
import type { Result } from '../../cni/result.js';
import type { PluginContext } from '../../cni/skel.js';
import { NftablesFirewall } from '../../firewall/nftables.js';
import { addRoute, replaceAddress } from '../../host/addresses.js';
import { HostError } from '../../host/errors.js';
import { runIpBatch, startIpBatch, type IpOperation } from '../../host/ip.js';
import { createBridge, createVethPair, deleteLink, findLink, randomMac, randomVethName, setAlias, setHairpin, setLinkUp, setPromiscuous, type Link } from '../../host/links.js';
import { namespaceExists } from '../../host/netns.js';
import { enableForwarding } from '../../host/sysctl.js';
import { ipamClient } from '../../ipam/client.js';
import { parsePrefix, prefixContains, parseAddress } from '../../util/ip.js';
import { planAddresses, routeGateway, type AddressPlan } from './addressing.js';
import type { BridgeConfig } from './config.js';
import { ownerAlias } from './owner.js';

export function hostFailure(error: unknown): never {
  if (error instanceof HostError) throw new CniError(ErrorCode.HostCommandFailed, error.message);
  throw error;
}

// Gateway addresses for the bridge; an address of the same subnet that differs is
// replaced only with forceAddress, as in the reference plugin.
function gatewayOperations(bridge: Link | undefined, plan: AddressPlan, config: BridgeConfig): IpOperation[] {
  const operations: IpOperation[] = [];
  for (const cidr of plan.gatewayCidrs) {
    const wanted = parsePrefix(cidr);
    if (!wanted) continue;
    const present = bridge?.addresses ?? [];
    if (present.some((entry) => `${entry.address}/${entry.prefixLength}` === cidr)) continue;
    for (const entry of present) {
      const existing = parseAddress(entry.address);
      if (!existing || !prefixContains(wanted, existing)) continue;
      if (!config.forceAddress) {
        throw new CniError(ErrorCode.InvalidConfig, `bridge ${config.bridge} already has address ${entry.address}/${entry.prefixLength} in the subnet of gateway ${cidr}; set "forceAddress" to replace it`);
      }
      operations.push({ tokens: ['addr', 'del', `${entry.address}/${entry.prefixLength}`, 'dev', config.bridge], what: `remove old address from ${config.bridge}` });
    }
    operations.push(replaceAddress(cidr, config.bridge, { noDad: true }));
  }
  return operations;
}

interface HostSide {
  bridgeMac: string;
  hostVeth: string;
  hostMac: string;
  containerMac: string;
}

function setUpHost(context: PluginContext, config: BridgeConfig, plan: AddressPlan, hostVeth: string): HostSide {
  const { invocation } = context;
  const bridge = findLink(config.bridge);
  if (bridge && bridge.kind !== 'bridge') {
    throw new CniError(ErrorCode.InvalidConfig, `${config.bridge} already exists and is not a bridge (it is a ${bridge.kind ?? 'plain'} interface)`);
  }
  const side: HostSide = { bridgeMac: bridge?.mac ?? randomMac(), hostVeth, hostMac: randomMac(), containerMac: config.mac ?? randomMac() };
  const operations: IpOperation[] = [];
  const bridgeSpec: Parameters<typeof createBridge>[0] = { name: config.bridge, mac: side.bridgeMac };
  if (config.mtu !== undefined) bridgeSpec.mtu = config.mtu;
  const creation = createBridge(bridgeSpec);
  if (!bridge) operations.push(creation);
  if (!bridge?.up) operations.push(setLinkUp(config.bridge));
  if (config.promiscMode) operations.push(setPromiscuous(config.bridge, true));
  operations.push(...gatewayOperations(bridge, plan, config));
  const vethSpec: Parameters<typeof createVethPair>[0] = {
    hostName: side.hostVeth,
    hostMac: side.hostMac,
    peerName: invocation.ifname,
    peerMac: side.containerMac,
    peerNetns: invocation.netns,
    master: config.bridge,
  };
  if (config.mtu !== undefined) vethSpec.mtu = config.mtu;
  operations.push(createVethPair(vethSpec));
  operations.push(setAlias(side.hostVeth, ownerAlias(context.config.name, invocation.containerId, invocation.ifname)));
  if (config.hairpinMode) operations.push(setHairpin(side.hostVeth, true));
  if (config.portIsolation) operations.push({ tokens: ['link', 'set', side.hostVeth, 'type', 'bridge_slave', 'isolated', 'on'], what: `isolate port ${side.hostVeth}` });
  const tolerated = runIpBatch(operations);
  // Another ADD created the bridge between our look and our batch: learn its MAC.
  if (tolerated.includes(creation)) side.bridgeMac = findLink(config.bridge)?.mac ?? side.bridgeMac;
  if (config.isGateway) for (const family of plan.families) enableForwarding(family);
  return side;
}

function containerOperations(context: PluginContext, config: BridgeConfig, plan: AddressPlan): IpOperation[] {
  const { ifname } = context.invocation;
  const operations: IpOperation[] = [setLinkUp('lo')];
  if (!config.disableContainerInterface) {
    operations.push(setLinkUp(ifname));
    for (const ip of plan.ips) operations.push(replaceAddress(ip.address, ifname, { noDad: !config.enableDad }));
    for (const route of plan.routes) {
      const spec: Parameters<typeof addRoute>[0] = { dst: route.dst, device: ifname };
      const gateway = routeGateway(route, plan.ips);
      if (gateway !== undefined) spec.gw = gateway;
      if (route.mtu !== undefined) spec.mtu = route.mtu;
      if (route.advmss !== undefined) spec.advmss = route.advmss;
      if (route.priority !== undefined) spec.priority = route.priority;
      if (route.table !== undefined) spec.table = route.table;
      if (route.scope !== undefined) spec.scope = route.scope;
      operations.push(addRoute(spec));
    }
  }
  return operations;
}

export async function attach(context: PluginContext, config: BridgeConfig): Promise<Result> {
  const { invocation } = context;
  if (!namespaceExists(invocation.netns)) {
    throw new CniError(ErrorCode.UnknownContainer, `network namespace ${invocation.netns} does not exist`);
  }
  const ipam = ipamClient(context);
  const allocated = await ipam.add();
  const hostVeth = randomVethName();
  const owner = { network: context.config.name, containerId: invocation.containerId, ifname: invocation.ifname };
  const firewall = new NftablesFirewall(config.stateDir);
  try {
    const plan = planAddresses(allocated, config);
    const side = setUpHost(context, config, plan, hostVeth);
    // The container's side and the masquerade rules are independent: the nft
    // transaction runs while ip configures the container.
    const containerSide = startIpBatch(containerOperations(context, config, plan), invocation.netns);
    try {
      if (config.ipMasq) firewall.addMasquerade(owner, plan.subnets);
    } finally {
      // Undoing must not start while ip still works on the container.
      await containerSide.finish();
    }
    const result: Result = {
      interfaces: [
        { name: config.bridge, mac: side.bridgeMac },
        { name: side.hostVeth, mac: side.hostMac },
        { name: invocation.ifname, mac: side.containerMac, sandbox: invocation.netns },
      ],
      ips: plan.ips,
    };
    if (plan.routes.length > 0) result.routes = plan.routes;
    const dns = context.config.dns ?? allocated.dns;
    if (dns) result.dns = dns;
    return result;
  } catch (error) {
    // Undo in reverse: the veth (deleting one end deletes both), then the addresses.
    // A veth whose creation itself failed is not ours to delete.
    const vethCreationFailed = error instanceof HostError && error.failedStep?.startsWith('create veth pair') === true;
    if (!vethCreationFailed) {
      try {
        runIpBatch([deleteLink(hostVeth)]);
      } catch {
        // Best effort: the original error is what the runtime must see.
      }
    }
    if (config.ipMasq) {
      try {
        firewall.removeMasquerade(owner);
      } catch {
        // Best effort, as above.
      }
    }
    await ipam.del().catch(() => undefined);
    return hostFailure(error);
  }
}
