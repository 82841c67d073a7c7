import { HostError } from '../host/errors.js';
import { nftJson } from '../host/nft.js';
import { isMapSet, isSafeElementText, knownSets } from './ruleset.js';

export interface KernelElement {
  set: string;
  key: string;
}

// One key part as we write it in a script, from nft's JSON.
function render(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  if (typeof value !== 'object' || value === null) return undefined;
  const object = value as Record<string, unknown>;
  if (Array.isArray(object['concat'])) {
    const parts = object['concat'].map(render);
    return parts.every((part) => part !== undefined) ? parts.join(' . ') : undefined;
  }
  const prefix = object['prefix'] as { addr?: unknown; len?: unknown } | undefined;
  if (prefix && typeof prefix.addr === 'string' && typeof prefix.len === 'number') return `${prefix.addr}/${prefix.len}`;
  // An element with a comment or timeout: its key is in `val`.
  const element = object['elem'] as { val?: unknown } | undefined;
  if (element && 'val' in element) return render(element.val);
  return undefined;
}

// Every element of our sets and maps as the kernel holds it, keyed as our scripts
// write keys. Elements of a shape we never write are left out: what we cannot name
// exactly we do not delete.
export async function listKernelElements(table: string): Promise<KernelElement[]> {
  const [family, name] = table.split(' ') as [string, string];
  let json: unknown;
  try {
    json = await nftJson(['list', 'table', family, name]);
  } catch (error) {
    if (error instanceof HostError && error.notFound) return [];
    throw error;
  }
  const found: KernelElement[] = [];
  for (const entry of (json as { nftables?: unknown[] }).nftables ?? []) {
    const object = entry as Record<string, { name?: unknown; elem?: unknown[] } | undefined>;
    const holder = object['set'] ?? object['map'];
    if (!holder || typeof holder.name !== 'string' || !knownSets.includes(holder.name)) continue;
    for (const element of holder.elem ?? []) {
      const key = render(isMapSet(holder.name) && Array.isArray(element) ? element[0] : element);
      if (key !== undefined && isSafeElementText(key)) found.push({ set: holder.name, key });
    }
  }
  return found;
}
