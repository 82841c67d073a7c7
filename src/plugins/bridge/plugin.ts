import { CniError, ErrorCode } from '../../cni/errors.js';
import type { Plugin, PluginContext } from '../../cni/skel.js';
import { NftablesFirewall } from '../../firewall/nftables.js';
import { runIpBatch } from '../../host/ip.js';
import { deleteLink, listLinks } from '../../host/links.js';
import { ipamClient } from '../../ipam/client.js';
import { attach, hostFailure } from './attach.js';
import { parseBridgeConfig } from './config.js';
import { detach } from './detach.js';
import { parseOwnerAlias } from './owner.js';
import { verify } from './verify.js';

// GC: addresses (through IPAM), host veths labelled with a stale owner, and the
// masquerade rules of attachments that no longer exist.
async function collectGarbage(context: PluginContext): Promise<void> {
  const valid = context.config.validAttachments;
  if (!valid) throw new CniError(ErrorCode.InvalidConfig, 'GC needs "cni.dev/valid-attachments" in the configuration');
  const config = parseBridgeConfig(context.config, context.invocation);
  await ipamClient(context).gc();
  const network = context.config.name;
  const isValid = (containerId: string, ifname: string) => valid.some((entry) => entry.containerId === containerId && entry.ifname === ifname);
  try {
    const stale = listLinks(undefined, { master: config.bridge }).filter((link) => {
      const owner = parseOwnerAlias(link.alias);
      return owner !== undefined && owner.network === network && !isValid(owner.containerId, owner.ifname);
    });
    runIpBatch(stale.map((link) => deleteLink(link.name)));
    new NftablesFirewall(config.stateDir).collectGarbage(network, 'masquerade', valid.map((entry) => ({ network, ...entry })));
  } catch (error) {
    hostFailure(error);
  }
}

export const bridgePlugin: Plugin = {
  add: (context) => attach(context, parseBridgeConfig(context.config, context.invocation)),
  del: (context) => detach(context, parseBridgeConfig(context.config, context.invocation)),
  check: (context) => verify(context, parseBridgeConfig(context.config, context.invocation)),
  status: async (context) => {
    parseBridgeConfig(context.config, context.invocation);
    await ipamClient(context).status();
  },
  gc: collectGarbage,
};
