import { CniError, ErrorCode } from '../../cni/errors.js';
import type { Plugin, PluginContext } from '../../cni/skel.js';
import { NftablesFirewall } from '../../firewall/nftables.js';
import { applyOperations } from '../../host/operations.js';
import { deleteLink, listLinks } from '../../host/links.js';
import { collectRecords } from '../../attachments/records.js';
import { ipamClient } from '../../ipam/client.js';
import { hostFailure } from '../failures.js';
import { attach } from './attach.js';
import { parseBridgeConfig } from './config.js';
import { detach } from './detach.js';
import { labelsNetwork, ownerMatches } from './owner.js';
import { verify } from './verify.js';

// GC: host veths labelled with a stale owner, the firewall elements of attachments
// that no longer exist (and any the kernel holds for nobody), then their addresses:
// the order of DEL, for the same reason.
async function collectGarbage(context: PluginContext): Promise<void> {
  const valid = context.config.validAttachments;
  if (!valid) throw new CniError(ErrorCode.InvalidConfig, 'GC needs "cni.dev/valid-attachments" in the configuration');
  const config = parseBridgeConfig(context.config, context.invocation);
  const network = context.config.name;
  const keep = valid.map((entry) => ({ network, ...entry }));
  try {
    const stale = (await listLinks(undefined, { master: config.bridge })).filter((link) => labelsNetwork(link.alias, network) && !keep.some((owner) => ownerMatches(link.alias, owner)));
    await applyOperations(stale.map((link) => deleteLink(link.name)));
    await new NftablesFirewall(config.stateDir).collectGarbage(network, keep);
  } catch (error) {
    hostFailure(error);
  }
  await ipamClient(context).gc();
  collectRecords(config.stateDir, network, keep);
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
