import type { PluginContext } from '../../cni/skel.js';
import { NftablesFirewall } from '../../firewall/nftables.js';
import { runIpBatch, startIpBatch } from '../../host/ip.js';
import { deleteLink, listLinks } from '../../host/links.js';
import { namespaceExists } from '../../host/netns.js';
import { ipamClient } from '../../ipam/client.js';
import { hostFailure } from './attach.js';
import type { BridgeConfig } from './config.js';
import { parseOwnerAlias } from './owner.js';

// DEL must succeed whatever is already gone (netns, veth, addresses, rules) and may
// be repeated; it removes everything this attachment owns.
export async function detach(context: PluginContext, config: BridgeConfig): Promise<void> {
  const { invocation } = context;
  const owner = { network: context.config.name, containerId: invocation.containerId, ifname: invocation.ifname };
  try {
    await ipamClient(context).del();
    let containerSide: { finish(): Promise<unknown> } | undefined;
    if (invocation.netns !== '' && namespaceExists(invocation.netns)) {
      // Deleting a veth is slow in the kernel; the nft transaction runs meanwhile.
      containerSide = startIpBatch([deleteLink(invocation.ifname)], invocation.netns);
    } else {
      // Without a reachable namespace the veth normally died with it; if something
      // else keeps that namespace alive, find our host end by its owner label.
      const leftovers = listLinks(undefined, { master: config.bridge }).filter((link) => {
        const labelled = parseOwnerAlias(link.alias);
        return labelled?.network === owner.network && labelled.containerId === owner.containerId && labelled.ifname === owner.ifname;
      });
      runIpBatch(leftovers.map((link) => deleteLink(link.name)));
    }
    try {
      new NftablesFirewall(config.stateDir).removeMasquerade(owner);
    } finally {
      await containerSide?.finish();
    }
  } catch (error) {
    hostFailure(error);
  }
}
