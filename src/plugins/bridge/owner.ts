// The label on each host veth naming the attachment it serves, so that GC can find
// veths left behind by containers that no longer exist.
const prefix = 'trestle';

export function ownerAlias(network: string, containerId: string, ifname: string): string {
  return `${prefix}/${network}/${containerId}/${ifname}`;
}

export function parseOwnerAlias(alias: string | undefined): { network: string; containerId: string; ifname: string } | undefined {
  if (alias === undefined) return undefined;
  const parts = alias.split('/');
  if (parts.length !== 4 || parts[0] !== prefix) return undefined;
  return { network: parts[1] as string, containerId: parts[2] as string, ifname: parts[3] as string };
}
