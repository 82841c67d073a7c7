import { parseCniArgs } from '../cni/args.js';
import { parseNetConf } from '../cni/config.js';
import { parseHostLocalConfig, type HostLocalConfig } from '../ipam/host-local-config.js';
import { DiskStore } from '../ipam/disk-store.js';
import { inProcessIpamType as hostLocalType } from '../ipam/client.js';
import type { PoolUsage } from './metrics.js';

// The host-local stores this daemon has allocated from, remembered from the calls
// themselves (a daemon serves whatever networks its runtime has), for the address
// gauges of /metrics.
export class Pools {
  private readonly seen = new Map<string, HostLocalConfig>();
  // What the last noted configuration's store was read from: most calls repeat it, and
  // reading the ranges again took as long as a tenth of an ADD.
  private lastSource = '';
  // The last configuration noted, as bytes: a runtime sends a network's first plugin
  // the same bytes for every container.
  private lastStdin: Buffer | undefined;

  noteCall(stdin: Buffer): void {
    // Parsing a configuration again took ~2% of a daemon's CPU in a burst of ADDs
    // (measured): skip the ones that cannot name a store, or the very one just noted.
    if (!stdin.includes(hostLocalType) || (this.lastStdin !== undefined && stdin.equals(this.lastStdin))) return;
    this.lastStdin = stdin;
    try {
      const conf = parseNetConf(stdin);
      if (conf.ipam?.type !== hostLocalType && conf.type !== hostLocalType) return;
      const source = JSON.stringify([conf.name, conf.ipam, conf.runtimeConfig['ipRanges']]);
      if (source === this.lastSource) return;
      const config = parseHostLocalConfig(conf, parseCniArgs(undefined));
      this.lastSource = source;
      this.seen.set(`${config.dataDir}/${config.network}`, config);
    } catch {
      // Not a configuration with a store we can read: nothing to count.
    }
  }

  usage(): PoolUsage[] {
    return [...this.seen.values()].map((config) => {
      const inUse = new DiskStore(config.dataDir, config.network).list().length;
      let size = 0n;
      for (const range of config.rangeSets.flat()) {
        size += range.end - range.start + 1n;
        if (range.gateway && range.gateway.value >= range.start && range.gateway.value <= range.end) size -= 1n;
      }
      const free = size - BigInt(inUse);
      return { network: config.network, inUse, free: Number(free > 0n ? free : 0n) };
    });
  }
}
