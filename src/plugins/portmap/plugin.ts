import { CniError, ErrorCode } from '../../cni/errors.js';
import type { Result } from '../../cni/result.js';
import type { Plugin, PluginContext } from '../../cni/skel.js';
import type { Owner } from '../../firewall/firewall.js';
import { NftablesFirewall } from '../../firewall/nftables.js';
import { nftablesProblem } from '../../host/nft.js';
import { hostFailure } from '../failures.js';
import { containerAddresses, expandMappings, parsePortmapConfig } from './config.js';

function ownerOf(context: PluginContext): Owner {
  return { network: context.config.name, containerId: context.invocation.containerId, ifname: context.invocation.ifname };
}

function warn(context: PluginContext, warnings: readonly string[]): void {
  for (const warning of warnings) context.warn(warning);
}

// A chained plugin: it adds host port mappings for the addresses the previous
// plugin gave the container and passes the previous result on unchanged.
async function add(context: PluginContext): Promise<Result> {
  const config = parsePortmapConfig(context.config);
  const previous = context.config.prevResult;
  if (!previous) throw new CniError(ErrorCode.InvalidConfig, 'trestle-portmap must be chained after a plugin that assigns addresses (no prevResult)');
  if (config.mappings.length === 0) return previous;
  const container = containerAddresses(previous);
  const mappings = expandMappings(config.mappings, container);
  if (mappings.length === 0) throw new CniError(ErrorCode.InvalidConfig, 'no container address matches the family of any requested port mapping');
  const options: Parameters<NftablesFirewall['addPortMappings']>[2] = { snat: config.snat, hairpinSubnets: container.subnets };
  if (container.hostInterface !== undefined) options.hostInterface = container.hostInterface;
  // The host side of the attachment: if a DEL of this container removed it while we
  // waited, the mappings would point at an address that is no longer its.
  options.requiredLinks = (previous.interfaces ?? []).filter((iface) => !iface.sandbox).map((iface) => iface.name);
  try {
    warn(context, await new NftablesFirewall(config.stateDir).addPortMappings(ownerOf(context), mappings, options));
  } catch (error) {
    hostFailure(error);
  }
  return previous;
}

export const portmapPlugin: Plugin = {
  add,
  del: async (context) => {
    const config = parsePortmapConfig(context.config, { mappings: false });
    try {
      warn(context, await new NftablesFirewall(config.stateDir).removePortMappings(ownerOf(context)));
    } catch (error) {
      hostFailure(error);
    }
  },
  check: async (context) => {
    const config = parsePortmapConfig(context.config);
    if (!context.config.prevResult) throw new CniError(ErrorCode.InvalidConfig, 'CHECK needs the ADD result as "prevResult"');
    if (config.mappings.length === 0) return;
    try {
      await new NftablesFirewall(config.stateDir).checkPortMappings(ownerOf(context));
    } catch (error) {
      hostFailure(error);
    }
  },
  status: async (context) => {
    parsePortmapConfig(context.config, { mappings: false });
    const problem = nftablesProblem();
    if (problem !== undefined) throw new CniError(ErrorCode.PluginNotAvailable, `nftables is not available on this node: ${problem}`);
  },
  gc: async (context) => {
    const config = parsePortmapConfig(context.config, { mappings: false });
    const valid = context.config.validAttachments;
    if (!valid) throw new CniError(ErrorCode.InvalidConfig, 'GC needs "cni.dev/valid-attachments" in the configuration');
    const network = context.config.name;
    try {
      await new NftablesFirewall(config.stateDir).collectGarbage(network, valid.map((entry) => ({ network, ...entry })));
    } catch (error) {
      hostFailure(error);
    }
  },
};
