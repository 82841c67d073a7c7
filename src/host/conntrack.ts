import { execFile } from '../util/exec.js';

// Drops UDP conntrack entries aimed at a host port, so datagrams to a port that was
// just (un)mapped do not keep following a stale translation. Best effort: a missing
// `conntrack` tool or an empty table is not an error. Returns a warning, if any.
export function flushUdpEntries(hostPort: number): string | undefined {
  const outcome = execFile('conntrack', ['-D', '-p', 'udp', '--orig-port-dst', String(hostPort)]);
  if (outcome.spawnError) return `conntrack not available (${outcome.spawnError.message}): stale UDP entries for port ${hostPort} were not flushed`;
  return undefined;
}
