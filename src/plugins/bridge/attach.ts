import { CniError, ErrorCode } from '../../cni/errors.js';
import type { Result } from '../../cni/result.js';
import type { PluginContext } from '../../cni/skel.js';
import { NftablesFirewall } from '../../firewall/nftables.js';
import { addRoute, deleteAddress, replaceAddress } from '../../host/addresses.js';
import { HostError } from '../../host/errors.js';
import { applyOperations, type HostOperation } from '../../host/operations.js';
import {
  bringUpLabelled,
  createBridge,
  createVethPair,
  deleteLink,
  disableIpv6,
  findLink,
  isolatePort,
  listLinks,
  randomMac,
  randomVethName,
  setHairpin,
  setLinkUp,
  setPromiscuous,
  withoutIpv6Addresses,
  type Link,
} from '../../host/links.js';
import { linkPresent } from '../../host/presence.js';
import { namespaceExists } from '../../host/netns.js';
import { enableForwarding } from '../../host/sysctl.js';
import { podOf, writeRecord, type AttachmentRecord } from '../../attachments/records.js';
import { ipamClient } from '../../ipam/client.js';
import { parsePrefix, prefixContains, parseAddress } from '../../util/ip.js';
import { hostFailure } from '../failures.js';
import { planAddresses, routeGateway, type AddressPlan } from './addressing.js';
import type { BridgeConfig } from './config.js';
import { requireContainerNamespace } from './namespace.js';
import { ownerAlias } from './owner.js';

// Gateway addresses for the bridge; an address of the same subnet that differs is
// replaced only with forceAddress, as in the reference plugin.
function gatewayOperations(bridge: Link | undefined, plan: AddressPlan, config: BridgeConfig): HostOperation[] {
  const operations: HostOperation[] = [];
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
      operations.push(deleteAddress(`${entry.address}/${entry.prefixLength}`, config.bridge));
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

// What this ADD changed on the shared bridge, so that a failed ADD can take it back.
interface BridgeChanges {
  createdBridge: boolean;
  addedGateways: string[];
}

async function setUpHost(context: PluginContext, config: BridgeConfig, plan: AddressPlan, hostVeth: string, changes: BridgeChanges): Promise<HostSide> {
  const { invocation } = context;
  const bridge = await findLink(config.bridge);
  if (bridge && bridge.kind !== 'bridge') {
    throw new CniError(ErrorCode.InvalidConfig, `${config.bridge} already exists and is not a bridge (it is a ${bridge.kind ?? 'plain'} interface)`);
  }
  const side: HostSide = { bridgeMac: bridge?.mac ?? randomMac(), hostVeth, hostMac: randomMac(), containerMac: config.mac ?? randomMac() };
  const operations: HostOperation[] = [];
  const bridgeSpec: Parameters<typeof createBridge>[0] = { name: config.bridge, mac: side.bridgeMac, multicastSnooping: config.mcastSnooping };
  if (config.mtu !== undefined) bridgeSpec.mtu = config.mtu;
  const creation = createBridge(bridgeSpec);
  if (!bridge) operations.push(creation);
  if (!bridge?.up) operations.push(setLinkUp(config.bridge));
  if (config.promiscMode) operations.push(setPromiscuous(config.bridge, true));
  const gateways = gatewayOperations(bridge, plan, config);
  operations.push(...gateways);
  const vethSpec: Parameters<typeof createVethPair>[0] = {
    hostName: side.hostVeth,
    hostMac: side.hostMac,
    peerName: invocation.ifname,
    peerMac: side.containerMac,
    peerNetns: invocation.netns,
    master: config.bridge,
    queues: config.vethQueues,
  };
  if (config.mtu !== undefined) vethSpec.mtu = config.mtu;
  operations.push(createVethPair(vethSpec));
  operations.push(disableIpv6(side.hostVeth), bringUpLabelled(side.hostVeth, ownerAlias(context.config.name, invocation.containerId, invocation.ifname)));
  if (config.hairpinMode) operations.push(setHairpin(side.hostVeth, true));
  if (config.portIsolation) operations.push(isolatePort(side.hostVeth));
  // Recorded before the batch runs: it may fail half-way, after the bridge changed.
  changes.createdBridge = !bridge;
  changes.addedGateways = plan.gatewayCidrs.filter((cidr) => !(bridge?.addresses ?? []).some((entry) => `${entry.address}/${entry.prefixLength}` === cidr));
  const tolerated = await applyOperations(operations);
  if (tolerated.includes(creation)) changes.createdBridge = false;
  // Another ADD created the bridge between our look and our batch: learn its MAC.
  if (tolerated.includes(creation)) side.bridgeMac = (await findLink(config.bridge))?.mac ?? side.bridgeMac;
  if (config.isGateway) for (const family of plan.families) enableForwarding(family);
  return side;
}

// A container given only IPv4 addresses gets no IPv6 address on that interface, not
// even a link-local one: nothing reachable past the network's IPv4-only rules, and
// none of the DAD, router solicitations and MLD reports that each container's
// link-local address sends and the bridge floods to every port (at 900 containers that
// traffic took 40% of the node's CPU during ADDs, in kernel workers that hold RTNL
// while the flood runs). IPv6 itself stays on: turning it off takes a sysctl, whose
// cost grows with the containers (see withoutIpv6Addresses).
function ipv4Only(plan: AddressPlan): boolean {
  return !plan.families.includes(6) && !plan.routes.some((route) => route.dst.includes(':'));
}

function containerOperations(context: PluginContext, config: BridgeConfig, plan: AddressPlan): HostOperation[] {
  const { ifname } = context.invocation;
  const operations: HostOperation[] = [setLinkUp('lo')];
  if (!config.disableContainerInterface) {
    if (ipv4Only(plan) && !config.keepIPv6) operations.push(withoutIpv6Addresses(ifname));
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

// A failed ADD leaves the shared bridge as it found it, as far as no other port
// depends on it: a bridge it created goes, a gateway address it added goes.
async function undoBridgeChanges(config: BridgeConfig, changes: BridgeChanges): Promise<void> {
  if (!changes.createdBridge && changes.addedGateways.length === 0) return;
  if ((await listLinks(undefined, { master: config.bridge })).length > 0) return;
  if (changes.createdBridge) await applyOperations([deleteLink(config.bridge)]);
  else await applyOperations(changes.addedGateways.map((cidr) => deleteAddress(cidr, config.bridge)));
}

// What the runtime should hear when something this ADD works on was removed under it:
// the container's namespace (3, as if it had been gone from the start: the kernel's
// words would depend on the instant), or the bridge (11: another ADD recreates it).
function vanished(error: unknown, netns: string, bridge: string): unknown {
  if (!(error instanceof HostError)) return error;
  if (!namespaceExists(netns)) return new CniError(ErrorCode.UnknownContainer, `network namespace ${netns} was removed during ADD`);
  if (!linkPresent(bridge)) return new CniError(ErrorCode.TryAgainLater, `bridge ${bridge} was deleted during ADD (${error.message}); try again`);
  return error;
}

export async function attach(context: PluginContext, config: BridgeConfig): Promise<Result> {
  const { invocation } = context;
  requireContainerNamespace(invocation.netns);
  const ipam = ipamClient(context);
  const allocated = await ipam.add();
  const hostVeth = randomVethName();
  const owner = { network: context.config.name, containerId: invocation.containerId, ifname: invocation.ifname };
  const firewall = new NftablesFirewall(config.stateDir);
  const changes: BridgeChanges = { createdBridge: false, addedGateways: [] };
  try {
    const plan = planAddresses(allocated, config);
    const side = await setUpHost(context, config, plan, hostVeth, changes);
    await applyOperations(containerOperations(context, config, plan), invocation.netns);
    if (config.ipMasq) await firewall.addMasquerade(owner, plan.subnets);
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
    const record: AttachmentRecord = {
      ...owner,
      netns: invocation.netns,
      bridge: config.bridge,
      hostVeth: side.hostVeth,
      hostMac: side.hostMac,
      containerMac: side.containerMac,
      addresses: plan.ips.map((ip) => ip.address),
      createdAt: new Date().toISOString(),
    };
    const pod = podOf(invocation.args);
    if (pod) record.pod = pod;
    writeRecord(config.stateDir, record);
    return result;
  } catch (error) {
    // Judged before the undoing below, which may itself remove a bridge this ADD made.
    const failure = vanished(error, invocation.netns, config.bridge);
    // Undo in reverse: the rules, the veth (deleting one end deletes both), what the
    // bridge gained, and last the addresses, which nothing may refer to once free.
    // Each step is best effort: the original error is what the runtime must see.
    // A veth whose creation itself failed is not ours to delete.
    if (config.ipMasq) await firewall.removeMasquerade(owner).catch(() => undefined);
    const vethCreationFailed = error instanceof HostError && error.failedStep?.startsWith('create veth pair') === true;
    const undo: Array<() => Promise<unknown>> = [() => undoBridgeChanges(config, changes)];
    if (!vethCreationFailed) undo.unshift(() => applyOperations([deleteLink(hostVeth)]));
    for (const step of undo) await step().catch(() => undefined);
    await ipam.del().catch(() => undefined);
    return hostFailure(failure);
  }
}
