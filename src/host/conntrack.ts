import { runProgram } from '../util/exec.js';

// The original destination ports of `conntrack -L` lines: the first "dport=" of a
// line is the original direction's, the second the reply's.
export function originalDestinationPorts(listing: string): Set<number> {
  const ports = new Set<number>();
  for (const line of listing.split('\n')) {
    const match = /\bdport=(\d+)/.exec(line);
    if (match) ports.add(Number(match[1]));
  }
  return ports;
}

// Drops UDP conntrack entries aimed at host ports, so datagrams to a port that was
// just (un)mapped do not keep following a stale translation. One listing, read
// here, and a deletion only for the ports that have entries (normally none): a call
// with thousands of mappings must not start thousands of processes. Best effort: a
// missing `conntrack` tool or an empty table is not an error. Returns warnings, if any.
export async function flushUdpEntries(hostPorts: readonly number[]): Promise<string[]> {
  const wanted = new Set(hostPorts);
  if (wanted.size === 0) return [];
  const listing = await runProgram('conntrack', ['-L', '-p', 'udp']);
  if (listing.spawnError) return [`conntrack not available (${listing.spawnError.message}): stale UDP entries for the mapped ports were not flushed`];
  const warnings: string[] = [];
  for (const port of originalDestinationPorts(listing.stdout)) {
    if (!wanted.has(port)) continue;
    const outcome = await runProgram('conntrack', ['-D', '-p', 'udp', '--orig-port-dst', String(port)]);
    if (outcome.spawnError) warnings.push(`conntrack failed (${outcome.spawnError.message}): stale UDP entries for port ${port} were not flushed`);
  }
  return warnings;
}
