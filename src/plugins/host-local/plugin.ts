import { checkKnownArgs } from '../../cni/args.js';
import { CniError, ErrorCode } from '../../cni/errors.js';
import type { Plugin, PluginContext } from '../../cni/skel.js';
import { ipamArgKeys } from '../../ipam/args.js';
import { parseHostLocalConfig } from '../../ipam/host-local-config.js';
import { addressesIn, allocateAddresses, checkAddresses, collectGarbage, releaseAddresses, storeStatus } from '../../ipam/host-local.js';

function configOf({ config, invocation }: PluginContext) {
  checkKnownArgs(invocation.args, ipamArgKeys);
  return parseHostLocalConfig(config, invocation.args);
}

export const hostLocalPlugin: Plugin = {
  add: async (context) => allocateAddresses(configOf(context), context.invocation.containerId, context.invocation.ifname),
  del: async (context) => releaseAddresses(configOf(context), context.invocation.containerId, context.invocation.ifname, addressesIn(context.config.prevResult)),
  check: async (context) => {
    const expected = (context.config.prevResult?.ips ?? []).map((ip) => ip.address.split('/')[0] as string);
    checkAddresses(configOf(context), context.invocation.containerId, context.invocation.ifname, expected);
  },
  status: async (context) => storeStatus(configOf(context)),
  gc: async (context) => {
    const valid = context.config.validAttachments;
    if (!valid) throw new CniError(ErrorCode.InvalidConfig, 'GC needs "cni.dev/valid-attachments" in the configuration');
    await collectGarbage(configOf(context), valid);
  },
};
