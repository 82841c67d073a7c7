// The networks a node is configured with, read from its CNI configuration directory
// (what containerd, CRI-O and podman read): for each network, the bridge, subnets and
// IPAM store that `trestle doctor` inspects.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { isJsonObject, type JsonObject } from '../cni/config.js';
import { isValidIdentifier } from '../cni/validate.js';
import { defaultDataDir } from '../ipam/host-local-config.js';
import { parsePrefix, type Prefix } from '../util/ip.js';

export const defaultConfDir = '/etc/cni/net.d';

export interface NetworkSummary {
  file: string;
  name: string;
  // The first bridge-type plugin's bridge, and whether it is ours (its veths carry
  // owner aliases that tell which container they serve).
  bridge?: string;
  trestleBridge: boolean;
  subnets: Prefix[];
  dataDir: string;
}

export interface ConfDirReading {
  networks: NetworkSummary[];
  // Files that are not usable configurations, with the reason.
  problems: Array<{ file: string; reason: string }>;
}

// Both forms host-local accepts: ranges (sets of ranges) and the older single subnet.
// Read leniently: doctor reports on what it can understand.
function subnetsOf(ipam: JsonObject): Prefix[] {
  const ranges = Array.isArray(ipam['ranges']) ? ipam['ranges'].flat().filter(isJsonObject) : [];
  return [...ranges.map((range) => range['subnet']), ipam['subnet']].flatMap((text) => {
    const prefix = typeof text === 'string' ? parsePrefix(text) : undefined;
    return prefix ? [prefix] : [];
  });
}

function summarize(file: string, document: JsonObject): NetworkSummary {
  const name = document['name'];
  if (typeof name !== 'string' || !isValidIdentifier(name)) throw new Error(`no valid "name"`);
  const plugins = Array.isArray(document['plugins']) ? document['plugins'].filter(isJsonObject) : [document];
  const summary: NetworkSummary = { file, name, trestleBridge: false, subnets: [], dataDir: defaultDataDir };
  for (const plugin of plugins) {
    const type = plugin['type'];
    if ((type === 'trestle-bridge' || type === 'bridge') && summary.bridge === undefined) {
      summary.bridge = typeof plugin['bridge'] === 'string' ? plugin['bridge'] : 'cni0';
      summary.trestleBridge = type === 'trestle-bridge';
    }
    const ipam = plugin['ipam'];
    if (isJsonObject(ipam)) {
      summary.subnets.push(...subnetsOf(ipam));
      if (typeof ipam['dataDir'] === 'string') summary.dataDir = ipam['dataDir'];
    }
  }
  return summary;
}

// Reads *.conflist, *.conf and *.json as libcni does; a missing directory is empty.
export function readConfDir(dir: string): ConfDirReading {
  const reading: ConfDirReading = { networks: [], problems: [] };
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return reading;
  }
  for (const name of names) {
    if (!/\.(conflist|conf|json)$/.test(name)) continue;
    const file = join(dir, name);
    try {
      const document: unknown = JSON.parse(readFileSync(file, 'utf8'));
      if (!isJsonObject(document)) throw new Error('not a JSON object');
      reading.networks.push(summarize(file, document));
    } catch (error) {
      reading.problems.push({ file, reason: (error as Error).message });
    }
  }
  return reading;
}
