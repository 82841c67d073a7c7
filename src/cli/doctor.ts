// `trestle doctor`: checks that a node can carry Trestle's traffic, and says what to
// do about each problem. It reads the namespace it runs in (run it under
// `ip netns exec` to inspect another one) and changes nothing.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { installedBuild, runningBundleDirectory } from '../daemon/build-id.js';
import { probeSocket } from '../daemon/listener.js';
import { queryDaemon } from '../daemon/query.js';
import { socketPath } from '../daemon/wire.js';
import { ownerMatches } from '../plugins/bridge/owner.js';
import { listLinks } from '../host/links.js';
import { listRoutes, type RouteEntry } from '../host/addresses.js';
import { koffi } from '../host/native/koffi.js';
import { nftJson, nftablesProblem } from '../host/nft.js';
import { readSysctl } from '../host/sysctl.js';
import { DiskStore } from '../ipam/disk-store.js';
import { debrisGraceMs } from '../util/debris.js';
import { formatPrefix, netmask, parsePrefix, type Prefix } from '../util/ip.js';
import { readConfDir, type NetworkSummary } from './networks.js';

export type Verdict = 'ok' | 'warn' | 'fail';

export interface Finding {
  check: string;
  verdict: Verdict;
  detail: string;
}

// The plugins reach the kernel through koffi's native module (netlink) and
// libnftables: without either, every ADD fails.
function native(): Finding[] {
  let version: string;
  try {
    version = koffi().version;
  } catch (error) {
    return [{ check: 'native module', verdict: 'fail', detail: (error as Error).message }];
  }
  const problem = nftablesProblem();
  return [
    { check: 'native module', verdict: 'ok', detail: `koffi ${version}` },
    problem === undefined ? { check: 'nftables', verdict: 'ok', detail: 'libnftables.so.1 loads' } : { check: 'nftables', verdict: 'fail', detail: `${problem}: ipMasq and trestle-portmap need it (apt-get install nftables)` },
  ];
}

// The installed client's build id: trestle.build beside the CLI's bundle, or beside the
// single executable (where `trestle daemon` reads its own).
function clientBuild(): { build: string | undefined; file: string } {
  const dir = runningBundleDirectory();
  return { build: installedBuild(dir), file: join(dir, 'trestle.build') };
}

// The daemon is an accelerator: none is fine. A build other than the installed
// client's serves nothing until it restarts; a socket that accepts but does not answer
// makes every call fail with 11.
async function daemon(): Promise<Finding> {
  const check = 'daemon';
  const path = socketPath(process.env);
  const answer = await queryDaemon(path);
  if (!answer.running) {
    // The native client runs a call one-shot exactly when it cannot connect, and
    // answers 11 when it connects but gets no proper answer.
    if ((await probeSocket(path)) === 'accepts') {
      return { check, verdict: 'fail', detail: `${path} accepts calls but gives no answer (${answer.reason}): every call fails with code 11 until that process is restarted or the socket removed` };
    }
    return { check, verdict: 'ok', detail: `no daemon answers on ${path} (${answer.reason}): calls run one-shot` };
  }
  const client = clientBuild();
  const running = `pid ${answer.pid} on ${path}, build ${answer.build ?? 'unknown'}, up ${answer.uptimeSeconds} s, ${answer.served} calls served`;
  if (client.build === undefined) return { check, verdict: 'warn', detail: `${running}; the installed client's build is unknown (no ${client.file})` };
  if (answer.build !== client.build) {
    return { check, verdict: 'warn', detail: `${running}; the installed client is build ${client.build}: calls run one-shot until the daemon restarts onto the new build` };
  }
  return { check, verdict: 'ok', detail: `${running}, the same as the installed client` };
}

function forwarding(): Finding {
  const value = readSysctl('/proc/sys/net/ipv4/ip_forward');
  if (value === '1') return { check: 'IPv4 forwarding', verdict: 'ok', detail: 'net.ipv4.ip_forward = 1' };
  return {
    check: 'IPv4 forwarding',
    verdict: 'warn',
    detail: 'net.ipv4.ip_forward = 0: containers reach only their bridge until a trestle-bridge ADD with isGateway turns it on',
  };
}

interface NftChain {
  chain?: { family: string; table: string; name: string; hook?: string; policy?: string };
}

// Docker hosts set the FORWARD policy to DROP, which silently blocks container traffic
// leaving the bridge (and, with br_netfilter, traffic between containers too).
async function forwardPolicy(): Promise<Finding> {
  // Without nft there is no ruleset to read; the nftables check already says so.
  let items: NftChain[] = [];
  try {
    items = ((await nftJson(['list', 'chains'])) as { nftables?: NftChain[] }).nftables ?? [];
  } catch {
    items = [];
  }
  const dropping = items.flatMap(({ chain }) => (chain?.hook === 'forward' && chain.policy === 'drop' ? [`${chain.family} ${chain.table} ${chain.name}`] : []));
  const bridgeFilter = readSysctl('/proc/sys/net/bridge/bridge-nf-call-iptables') === '1';
  const filterNote = bridgeFilter ? '; br_netfilter is loaded, so traffic between containers on one bridge is filtered there too' : '';
  if (dropping.length === 0) {
    return { check: 'forward policy', verdict: 'ok', detail: `no forward chain drops by default${bridgeFilter ? ' (br_netfilter loaded)' : ''}` };
  }
  return {
    check: 'forward policy',
    verdict: 'fail',
    detail: `forwarded traffic is dropped by default in ${dropping.join(', ')}${filterNote}: accept the bridges' traffic there (e.g. iptables -I FORWARD -i trestle0 -j ACCEPT; iptables -I FORWARD -o trestle0 -j ACCEPT)`,
  };
}

// Two prefixes overlap when they agree on the bits of the shorter one.
function overlaps(a: Prefix, b: Prefix): boolean {
  if (a.family !== b.family) return false;
  const mask = netmask(a.family, Math.min(a.length, b.length));
  return (a.network & mask) === (b.network & mask);
}

// A network's subnet that an existing route already covers (other than the default
// route and the network's own bridge) makes some destinations unreachable.
async function subnetOverlaps(networks: NetworkSummary[]): Promise<Finding[]> {
  const routes: Array<{ route: RouteEntry; prefix: Prefix }> = [];
  for (const route of await listRoutes()) {
    const prefix = parsePrefix(route.dst);
    if (prefix && prefix.length > 0) routes.push({ route, prefix });
  }
  return networks.flatMap((network) =>
    network.subnets.map((subnet): Finding => {
      const clashes = routes.filter(({ route, prefix }) => route.dev !== network.bridge && overlaps(prefix, subnet));
      const check = `subnet ${formatPrefix(subnet)} (${network.name})`;
      if (clashes.length === 0) return { check, verdict: 'ok', detail: 'no other route overlaps it' };
      const described = clashes.map(({ route }) => `${route.dst}${route.dev ? ` dev ${route.dev}` : ''}`).join(', ');
      return { check, verdict: 'fail', detail: `overlaps existing route ${described}: choose another subnet in ${network.file}` };
    }),
  );
}

// Addresses reserved for attachments whose host veth is gone: left behind by a runtime
// that never called DEL. Only trestle-bridge labels its veths, so only its networks
// can be judged. Records no owner can release (empty or unreadable: a writer killed
// half-way) are reported apart, since only GC removes them.
async function staleAllocations(networks: NetworkSummary[]): Promise<Finding[]> {
  const labels = (await listLinks(undefined, { kind: 'veth' })).map((link) => link.alias);
  return networks
    .filter((network) => network.trestleBridge)
    .flatMap((network): Finding[] => {
      const check = `allocations (${network.name})`;
      const store = new DiskStore(network.dataDir, network.name);
      const reservations = store.list();
      const findings: Finding[] = [];
      const stale = reservations.filter((entry) => !labels.some((alias) => ownerMatches(alias, { network: network.name, containerId: entry.containerId, ifname: entry.ifname })));
      if (stale.length === 0) findings.push({ check, verdict: 'ok', detail: `${reservations.length} in use, none stale` });
      else {
        const sample = stale.slice(0, 5).map((entry) => `${entry.ip} (${entry.containerId.slice(0, 16)})`).join(', ');
        findings.push({
          check,
          verdict: 'warn',
          detail: `${stale.length} of ${reservations.length} reserved addresses have no veth on the node: ${sample}${stale.length > 5 ? ', ...' : ''}; a runtime GC (CNI 1.1) or DEL releases them`,
        });
      }
      const debris = store.findDebris(0);
      if (debris.length > 0) {
        findings.push({
          check,
          verdict: 'warn',
          detail: `${debris.length} records no container owns (empty, unreadable or temporary: ${debris.slice(0, 5).join(', ')}${debris.length > 5 ? ', ...' : ''}): a runtime GC (CNI 1.1) removes them once they are ${debrisGraceMs / 1000} s old`,
        });
      }
      return findings;
    });
}

export async function diagnose(confDir: string): Promise<Finding[]> {
  const reading = readConfDir(confDir);
  const loaded = native();
  const usable = loaded.every((finding) => finding.verdict === 'ok');
  const findings: Finding[] = [...loaded, await daemon(), forwarding(), ...(usable ? [await forwardPolicy()] : [])];
  if (!existsSync(confDir)) findings.push({ check: 'configuration', verdict: 'warn', detail: `${confDir} does not exist: no network to check` });
  else if (reading.networks.length === 0 && reading.problems.length === 0) findings.push({ check: 'configuration', verdict: 'warn', detail: `no network configuration in ${confDir}` });
  for (const problem of reading.problems) findings.push({ check: 'configuration', verdict: 'fail', detail: `${problem.file}: ${problem.reason}` });
  if (usable) findings.push(...(await subnetOverlaps(reading.networks)), ...(await staleAllocations(reading.networks)));
  return findings;
}
