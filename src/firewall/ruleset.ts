// Trestle's nftables ruleset: one table of our own, shared by every network and
// container. Per-container state lives only in set and map elements, so a packet's
// cost and an ADD's cost do not grow with the number of containers, and removing
// a container is removing its elements.
export const table = 'inet trestle';

const skeleton = [
  `add table ${table}`,
  `add chain ${table} prerouting { type nat hook prerouting priority dstnat; policy accept; }`,
  `add chain ${table} output { type nat hook output priority -100; policy accept; }`,
  `add chain ${table} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
  `add chain ${table} hostports`,
  // Containers whose traffic leaving their subnet is masqueraded, and the
  // (source . destination) pairs that keep their source address: a masqueraded
  // container's own subnet and multicast, one element per subnet shared by its
  // containers (older versions wrote one per container).
  `add set ${table} masq4 { type ipv4_addr; }`,
  `add set ${table} masq6 { type ipv6_addr; }`,
  `add set ${table} masqskip4 { type ipv4_addr . ipv4_addr; flags interval; }`,
  `add set ${table} masqskip6 { type ipv6_addr . ipv6_addr; flags interval; }`,
  // Host ports: (proto . port) on any local address, or (address . proto . port).
  `add map ${table} hp_any4 { type inet_proto . inet_service : ipv4_addr . inet_service; }`,
  `add map ${table} hp_any6 { type inet_proto . inet_service : ipv6_addr . inet_service; }`,
  `add map ${table} hp_addr4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }`,
  `add map ${table} hp_addr6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }`,
  // DNATed connections that must be masqueraded so replies come back through the
  // node (hairpin and loopback clients): to a container of hairpindst, from a source
  // and to a subnet paired in hairpinnet (its network's subnets, and loopback). The
  // pairs are per subnet, not per container: removing an element from an interval
  // set costs the kernel time that grows with the set (nft_pipapo_remove took half
  // of a DEL's time at 1,000 containers), and hairpindst is a hash.
  `add set ${table} hairpindst4 { type ipv4_addr; }`,
  `add set ${table} hairpindst6 { type ipv6_addr; }`,
  `add set ${table} hairpinnet4 { type ipv4_addr . ipv4_addr; flags interval; }`,
  `add set ${table} hairpinnet6 { type ipv6_addr . ipv6_addr; flags interval; }`,
  // What older versions wrote instead, (source . container) pairs: kept, with their
  // rule, for the containers they attached until those are deleted.
  `add set ${table} hairpin4 { type ipv4_addr . ipv4_addr; flags interval; }`,
  `add set ${table} hairpin6 { type ipv6_addr . ipv6_addr; flags interval; }`,
];

// Rules are not idempotent to add, so every transaction flushes the fixed chains and
// writes them again: the result is the same whichever of many concurrent ADDs
// commits last, and no rule is ever duplicated.
const rules = [
  `flush chain ${table} prerouting`,
  `flush chain ${table} output`,
  `flush chain ${table} postrouting`,
  `flush chain ${table} hostports`,
  `add rule ${table} prerouting fib daddr type local jump hostports`,
  `add rule ${table} output fib daddr type local jump hostports`,
  `add rule ${table} hostports meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @hp_addr4`,
  `add rule ${table} hostports meta nfproto ipv4 dnat ip to meta l4proto . th dport map @hp_any4`,
  `add rule ${table} hostports meta nfproto ipv6 dnat ip6 to ip6 daddr . meta l4proto . th dport map @hp_addr6`,
  `add rule ${table} hostports meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @hp_any6`,
  `add rule ${table} postrouting ct status dnat ip daddr @hairpindst4 ip saddr . ip daddr @hairpinnet4 masquerade`,
  `add rule ${table} postrouting ct status dnat ip6 daddr @hairpindst6 ip6 saddr . ip6 daddr @hairpinnet6 masquerade`,
  `add rule ${table} postrouting ct status dnat ip saddr . ip daddr @hairpin4 masquerade`,
  `add rule ${table} postrouting ct status dnat ip6 saddr . ip6 daddr @hairpin6 masquerade`,
  `add rule ${table} postrouting ip saddr @masq4 ip saddr . ip daddr != @masqskip4 masquerade`,
  `add rule ${table} postrouting ip6 saddr @masq6 ip6 saddr . ip6 daddr != @masqskip6 masquerade`,
];

export function sharedStructures(): string[] {
  return [...skeleton, ...rules];
}

// The sets and maps that hold per-attachment elements.
export const knownSets: readonly string[] = ['masq4', 'masq6', 'masqskip4', 'masqskip6', 'hp_any4', 'hp_any6', 'hp_addr4', 'hp_addr6', 'hairpindst4', 'hairpindst6', 'hairpinnet4', 'hairpinnet6', 'hairpin4', 'hairpin6'];

export function isMapSet(set: string): boolean {
  return set.startsWith('hp_');
}

// The only tokens an element we write can hold: addresses, prefixes and ports,
// protocols, the concatenation and mapping operators, and a comment of safe
// characters. A record read back from disk is checked against this before any
// part of it reaches an nft script.
const elementToken = /^(?:[0-9A-Fa-f.:/]+|tcp|udp|sctp|comment|"[A-Za-z0-9_./-]{0,120}")$/;

export function isSafeElementText(text: string): boolean {
  return text.length > 0 && text.length <= 512 && text.split(' ').every((token) => elementToken.test(token));
}
