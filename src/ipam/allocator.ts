import { CniError, ErrorCode } from '../cni/errors.js';
import type { IpConfig } from '../cni/result.js';
import { formatAddress, formatCidr, parseAddress, type Address } from '../util/ip.js';
import { describeRangeSet, rangeContains, type Range, type RangeSet } from './ranges.js';
import type { Store } from './store.js';

function findRange(set: RangeSet, address: Address): Range | undefined {
  return set.find((range) => rangeContains(range, address));
}

// Every candidate address of a range set once, starting just after the last
// reserved one (round-robin, as the reference host-local does) and wrapping around.
function* candidates(set: RangeSet, lastReserved: Address | undefined): Generator<{ range: Range; value: bigint }> {
  const startIndex = lastReserved ? set.findIndex((range) => rangeContains(range, lastReserved)) : -1;
  if (startIndex < 0 || !lastReserved) {
    for (const range of set) for (let value = range.start; value <= range.end; value++) yield { range, value };
    return;
  }
  const first = set[startIndex] as Range;
  for (let value = lastReserved.value + 1n; value <= first.end; value++) yield { range: first, value };
  for (let i = 1; i < set.length; i++) {
    const range = set[(startIndex + i) % set.length] as Range;
    for (let value = range.start; value <= range.end; value++) yield { range, value };
  }
  for (let value = first.start; value <= lastReserved.value; value++) yield { range: first, value };
}

function ipConfig(range: Range, address: Address): IpConfig {
  const config: IpConfig = { address: formatCidr(address, range.subnet.length) };
  if (range.gateway) config.gateway = formatAddress(range.gateway);
  return config;
}

// Claims one address from `set` for the owner. Must run under the store lock.
export function allocate(store: Store, set: RangeSet, setIndex: number, containerId: string, ifname: string, requested?: Address): IpConfig {
  if (requested) {
    const range = findRange(set, requested);
    const text = formatAddress(requested);
    if (!range) throw new CniError(ErrorCode.AddressUnavailable, `requested IP address ${text} is not in range set ${describeRangeSet(set)}`);
    if (range.gateway && range.gateway.value === requested.value) {
      throw new CniError(ErrorCode.AddressUnavailable, `requested IP address ${text} is the gateway of ${describeRangeSet(set)}`);
    }
    if (!store.reserve(text, containerId, ifname, setIndex)) {
      throw new CniError(ErrorCode.AddressUnavailable, `requested IP address ${text} is not available in range set ${describeRangeSet(set)}`);
    }
    return ipConfig(range, requested);
  }
  const lastText = store.lastReserved(setIndex);
  const last = lastText !== undefined ? parseAddress(lastText) : undefined;
  const family = (set[0] as Range).subnet.family;
  for (const { range, value } of candidates(set, last)) {
    if (range.gateway && range.gateway.value === value) continue;
    const address: Address = { family, value };
    if (store.reserve(formatAddress(address), containerId, ifname, setIndex)) return ipConfig(range, address);
  }
  throw new CniError(ErrorCode.AddressExhausted, `no IP addresses available in range set ${describeRangeSet(set)}`);
}
