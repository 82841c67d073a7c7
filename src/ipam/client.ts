import { delegate } from '../cni/delegate.js';
import type { PluginContext } from '../cni/skel.js';
import { CniError, ErrorCode } from '../cni/errors.js';
import type { Result } from '../cni/result.js';
import { parseHostLocalConfig } from './host-local-config.js';
import { addressesIn, allocateAddresses, checkAddresses, collectGarbage, releaseAddresses, storeStatus } from './host-local.js';

// The IPAM plugin named by ipam.type, as a main plugin sees it.
export interface IpamClient {
  add(): Promise<Result>;
  del(): Promise<void>;
  check(): Promise<void>;
  status(): Promise<void>;
  gc(): Promise<void>;
}

// trestle-host-local runs in this process (same store, same locks, same result): it
// saves starting a second Node process. Any other type is executed from CNI_PATH.
export const inProcessIpamType = 'trestle-host-local';

export function ipamClient(context: PluginContext): IpamClient {
  const { config, invocation } = context;
  const ipam = config.ipam;
  if (!ipam) throw new CniError(ErrorCode.InvalidConfig, 'network configuration has no "ipam" section');
  if (ipam.type === inProcessIpamType) {
    const hostLocal = () => parseHostLocalConfig(config, invocation.args);
    const { containerId, ifname } = invocation;
    return {
      add: () => allocateAddresses(hostLocal(), containerId, ifname),
      del: () => releaseAddresses(hostLocal(), containerId, ifname, addressesIn(config.prevResult)),
      check: async () => {
        const expected = (config.prevResult?.ips ?? []).map((ip) => ip.address.split('/')[0] as string);
        checkAddresses(hostLocal(), containerId, ifname, expected);
      },
      status: async () => storeStatus(hostLocal()),
      gc: async () => {
        await collectGarbage(hostLocal(), config.validAttachments ?? []);
      },
    };
  }
  const run = (command: 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC') => delegate(ipam.type, command, config.bytes, invocation.path, context.environment);
  return {
    add: async () => {
      const result = await run('ADD');
      if (!result) throw new CniError(ErrorCode.DecodingFailure, `IPAM plugin ${ipam.type} returned no result`);
      return result;
    },
    del: async () => void (await run('DEL')),
    check: async () => void (await run('CHECK')),
    status: async () => void (await run('STATUS')),
    gc: async () => void (await run('GC')),
  };
}
