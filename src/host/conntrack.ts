import { execFile } from '../util/exec.js';

// Drops UDP conntrack entries aimed at host ports, so datagrams to a port that was
// just (un)mapped do not keep following a stale translation. Best effort: a missing
// `conntrack` tool or an empty table is not an error. Returns warnings, if any.
export function flushUdpEntries(hostPorts: readonly number[]): string[] {
  const warnings: string[] = [];
  for (const hostPort of new Set(hostPorts)) {
    const outcome = execFile('conntrack', ['-D', '-p', 'udp', '--orig-port-dst', String(hostPort)]);
    if (outcome.spawnError) warnings.push(`conntrack not available (${outcome.spawnError.message}): stale UDP entries for port ${hostPort} were not flushed`);
  }
  return warnings;
}
