import type { PluginContext } from '../../cni/skel.js';
import { NftablesFirewall } from '../../firewall/nftables.js';
import { listLinks, removeLink } from '../../host/links.js';
import { namespaceExists } from '../../host/netns.js';
import { removeRecord } from '../../attachments/records.js';
import { ipamClient } from '../../ipam/client.js';
import { hostFailure } from '../failures.js';
import type { BridgeConfig } from './config.js';
import { refuseNodeNamespace } from './namespace.js';
import { ownerMatches } from './owner.js';

// DEL must succeed whatever is already gone (netns, veth, addresses, rules) and may
// be repeated; it removes everything this attachment owns. The order is what makes a
// DEL killed at any point safe to run again: first the veth (after which no ADD of
// this attachment still in flight can install a port mapping, see trestle-portmap),
// then every firewall element that names the container's address, and only then the
// address itself, which another container may be given the moment it is free.
export async function detach(context: PluginContext, config: BridgeConfig): Promise<void> {
  const { invocation } = context;
  const owner = { network: context.config.name, containerId: invocation.containerId, ifname: invocation.ifname };
  refuseNodeNamespace(invocation.netns);
  try {
    if (invocation.netns !== '' && namespaceExists(invocation.netns)) {
      // Deleting either end of a veth deletes both.
      await removeLink(invocation.ifname, invocation.netns);
    } else {
      // Without a reachable namespace the veth normally died with it; if something
      // else keeps that namespace alive, find our host end by its owner label.
      const leftovers = (await listLinks(undefined, { master: config.bridge })).filter((link) => ownerMatches(link.alias, owner));
      for (const link of leftovers) await removeLink(link.name);
    }
    for (const warning of await new NftablesFirewall(config.stateDir).removeAll(owner)) context.warn(warning);
  } catch (error) {
    hostFailure(error);
  }
  await ipamClient(context).del();
  removeRecord(config.stateDir, owner);
}
