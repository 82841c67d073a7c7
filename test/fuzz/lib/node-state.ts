// What "the node unchanged" means for the fuzz suite: the sandbox node namespace's
// links, addresses, routes, nft ruleset and IPv4 sysctls, the sandbox's own store and
// state directories, and files outside the sandbox where a plugin could escape to.
// Read and restored from inside the node namespace (by the worker): /proc/sys/net
// shows the namespace of the process that reads it.
import { existsSync, lstatSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from '../../../src/util/exec.js';

export interface StatePaths {
  // Must hold no record once every case is undone: the IPAM store and firewall state.
  dataDir: string;
  stateDir: string;
  // Must stay empty: where hostile names and relative paths would land if they got through.
  canaryDirs: string[];
}

export interface NodeState {
  links: string[];
  addresses: string[];
  routes: string[];
  ruleset: string;
  sysctls: Record<string, string>;
  // Listing of each watched directory (path -> entries, recursive where it matters).
  files: Record<string, string[]>;
}

// Outside the sandbox, places a plugin must never write: the shared /tmp and
// /run/netns, and the defaults of dataDir and stateDir.
export const outsideTrees = ['/tmp', '/run/netns', '/var/lib/cni', '/run/trestle'];
function run(file: string, args: readonly string[], input?: string): string {
  const outcome = execFile(file, args, input === undefined ? {} : { input });
  if (outcome.status !== 0 || outcome.spawnError) throw new Error(`${file} ${args.join(' ')}: ${outcome.stderr.trim() || outcome.spawnError?.message}`);
  return outcome.stdout;
}

type Json = Record<string, any>;

// IPv6 link-local addresses and their routes come and go with a bridge's carrier
// (a port attached or not): the kernel's doing, not a plugin's.
function isLinkLocal(address: string): boolean {
  return /^(fe80:|ff00::)/.test(address);
}

// A JSON tuple per entry: readable in a diff, and parseable again to undo it.
const key = (...parts: unknown[]): string => JSON.stringify(parts);

// `ip -batch` prints one JSON array per command, back to back ("[...][...]").
function splitArrays(text: string): Json[][] {
  return JSON.parse(`[${text.trim().replace(/\]\s*\[/g, '],[')}]`) as Json[][];
}

// Links with their addresses and the IPv4 routes in one `ip`, the IPv6 routes in another.
function readLinksAndRoutes(): { links: string[]; addresses: string[]; routes: string[] } {
  const [entries = [], routes4 = []] = splitArrays(run('ip', ['-d', '-j', '-batch', '-'], 'addr show\nroute show table all\n'));
  const routes6 = JSON.parse(run('ip', ['-6', '-j', 'route', 'show', 'table', 'all'])) as Json[];
  const links: string[] = [];
  const addresses: string[] = [];
  for (const entry of entries) {
    // Carrier flags follow the ports a bridge has at the moment; UP is the node's choice.
    const flags = (entry['flags'] as string[]).filter((flag) => ['UP', 'PROMISC', 'NOARP'].includes(flag)).sort();
    links.push(key(entry['ifname'], entry['linkinfo']?.['info_kind'] ?? '', entry['master'] ?? '', entry['mtu'], flags.join(',')));
    for (const address of (entry['addr_info'] ?? []) as Json[]) if (!isLinkLocal(String(address['local']))) addresses.push(key(entry['ifname'], `${address['local']}/${address['prefixlen']}`));
  }
  const routes: string[] = [];
  for (const [family, list] of [['-4', routes4], ['-6', routes6]] as const) {
    for (const route of list) {
      if (isLinkLocal(String(route['dst']))) continue;
      routes.push(key(family, route['table'] ?? 'main', route['type'] ?? 'unicast', route['dst'], route['gateway'] ?? '', route['dev'] ?? '', route['prefsrc'] ?? ''));
    }
  }
  return { links: links.sort(), addresses: addresses.sort(), routes: routes.sort() };
}

function readSysctls(): Record<string, string> {
  const values: Record<string, string> = {};
  const read = (path: string) => {
    try {
      values[path] = readFileSync(path, 'utf8').trim();
    } catch {
      // Write-only or vanished with its link: nothing to compare.
    }
  };
  read('/proc/sys/net/ipv4/ip_forward');
  read('/proc/sys/net/ipv6/conf/all/forwarding');
  const confDir = '/proc/sys/net/ipv4/conf';
  for (const link of readdirSync(confDir)) for (const name of readdirSync(join(confDir, link))) read(join(confDir, link, name));
  return values;
}

// Entries under `root` as relative paths (directories end in "/"), depth-limited.
function tree(root: string, depth = 4): string[] {
  if (!existsSync(root)) return [];
  const entries: string[] = [];
  const walk = (dir: string, prefix: string, left: number) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      const isDir = lstatSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
      entries.push(`${prefix}${name}${isDir ? '/' : ''}`);
      if (isDir && left > 1) walk(path, `${prefix}${name}/`, left - 1);
    }
  };
  walk(root, '', depth);
  return entries.sort();
}

// Records in the store: address files (not the lock or the last-reserved markers) and
// any state file. Directories stay: an empty network directory is no record.
function records(root: string): string[] {
  return tree(root).filter((entry) => !entry.endsWith('/') && !/(^|\/)(lock|last_reserved_ip\.\d+)$/.test(entry));
}

function readFiles(paths: StatePaths): Record<string, string[]> {
  const files: Record<string, string[]> = {
    '/tmp': readdirSync('/tmp').sort(),
    '/run/netns': (existsSync('/run/netns') ? readdirSync('/run/netns') : []).sort(),
    [paths.dataDir]: records(paths.dataDir),
    [paths.stateDir]: records(paths.stateDir),
  };
  for (const root of ['/var/lib/cni', '/run/trestle', ...paths.canaryDirs]) files[root] = tree(root);
  return files;
}

export function readNodeState(paths: StatePaths): NodeState {
  return { ...readLinksAndRoutes(), ruleset: run('nft', ['list', 'ruleset']), sysctls: readSysctls(), files: readFiles(paths) };
}

function attempt(action: () => unknown): void {
  try {
    action();
  } catch {
    // Best effort: the parent compares again and rebuilds the sandbox if this was not enough.
  }
}

// Undoes what a case left in the node namespace and the sandbox's own directories.
// Nothing outside the sandbox is touched: a change there is only reported.
export function restoreNodeState(paths: StatePaths, baseline: NodeState): void {
  const now = readNodeState(paths);
  const baseLinks = new Set(baseline.links.map((entry) => (JSON.parse(entry) as string[])[0]));
  // One `ip -batch` (with -force: go on past errors): a case may leave a thousand addresses.
  const batch: string[] = [];
  for (const entry of now.links) {
    const name = (JSON.parse(entry) as string[])[0] as string;
    if (!baseLinks.has(name)) batch.push(`link del dev ${JSON.stringify(name)}`);
  }
  for (const entry of now.addresses) {
    if (baseline.addresses.includes(entry)) continue;
    const [dev, cidr] = JSON.parse(entry) as [string, string];
    if (baseLinks.has(dev)) batch.push(`addr del ${cidr} dev ${JSON.stringify(dev)}`);
  }
  if (batch.length > 0) attempt(() => run('ip', ['-force', '-batch', '-'], `${batch.join('\n')}\n`));
  if (now.ruleset !== baseline.ruleset) attempt(() => run('nft', ['-f', '-'], `flush ruleset\n${baseline.ruleset}`));
  for (const [path, value] of Object.entries(baseline.sysctls)) {
    if (now.sysctls[path] !== undefined && now.sysctls[path] !== value) attempt(() => writeFileSync(path, value));
  }
  for (const root of [paths.dataDir, paths.stateDir, ...paths.canaryDirs]) {
    for (const entry of now.files[root] ?? []) if (!(baseline.files[root] ?? []).includes(entry)) attempt(() => rmSync(join(root, entry), { recursive: true, force: true }));
  }
}

function listDiff(what: string, before: readonly string[], after: readonly string[]): string[] {
  const had = new Set(before);
  const has = new Set(after);
  return [...after.filter((entry) => !had.has(entry)).map((entry) => `${what} added ${entry}`), ...before.filter((entry) => !has.has(entry)).map((entry) => `${what} removed ${entry}`)];
}

// Every difference as one line; empty when the node is as it was.
export function diffNodeState(before: NodeState, after: NodeState): string[] {
  const lines = [...listDiff('link', before.links, after.links), ...listDiff('address', before.addresses, after.addresses), ...listDiff('route', before.routes, after.routes)];
  lines.push(...listDiff('nft', before.ruleset.split('\n'), after.ruleset.split('\n')));
  for (const path of new Set([...Object.keys(before.sysctls), ...Object.keys(after.sysctls)])) {
    if (before.sysctls[path] !== after.sysctls[path]) lines.push(`sysctl ${path}: ${before.sysctls[path] ?? '(none)'} -> ${after.sysctls[path] ?? '(none)'}`);
  }
  for (const root of new Set([...Object.keys(before.files), ...Object.keys(after.files)])) lines.push(...listDiff(`file in ${root}:`, before.files[root] ?? [], after.files[root] ?? []));
  return lines;
}
