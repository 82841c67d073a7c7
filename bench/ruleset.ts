import type { BenchNode } from './node.js';

// Shared firewall structures written twice by racing ADDs show up as identical rules
// in the same chain (nft refuses a second table or chain of the same name, and set
// elements cannot repeat), so that is what is counted.
export interface RulesetCensus {
  rules: number;
  // Extra copies, and a few of the duplicated rules as printed.
  duplicates: number;
  examples: string[];
}

function census(keys: string[]): RulesetCensus {
  const counts = new Map<string, number>();
  for (const key of keys) counts.set(key, (counts.get(key) ?? 0) + 1);
  const repeated = [...counts].filter(([, count]) => count > 1);
  return {
    rules: keys.length,
    duplicates: repeated.reduce((sum, [, count]) => sum + count - 1, 0),
    examples: repeated.slice(0, 3).map(([key, count]) => `${count}× ${key}`),
  };
}

// `iptables-save`: "*table" opens a table, "-A CHAIN ..." is a rule.
export function iptablesRules(text: string): string[] {
  let table = '';
  const keys: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1);
    else if (line.startsWith('-A ')) keys.push(`${table} ${line}`);
  }
  return keys;
}

// `nft list ruleset`: a rule is any statement line inside a chain block other than
// the base-chain header; counters are dropped since two copies count differently.
export function nftRules(text: string): string[] {
  let table = '';
  let chain: string | undefined;
  const keys: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const opened = /^table (\S+ \S+) \{$/.exec(line);
    if (opened) {
      table = opened[1] as string;
      continue;
    }
    const chainOpened = /^chain (\S+) \{$/.exec(line);
    if (chainOpened) {
      chain = chainOpened[1] as string;
      continue;
    }
    if (chain === undefined) continue;
    if (line === '}') chain = undefined;
    else if (line !== '' && !/^(type |policy )/.test(line)) keys.push(`${table} ${chain}: ${line.replace(/counter packets \d+ bytes \d+/, 'counter')}`);
  }
  return keys;
}

// The node's ruleset as the implementation writes it: nftables for Trestle's portmap,
// iptables (nf_tables backend) for the reference.
export async function rulesetCensus(node: BenchNode, usesNft: boolean): Promise<RulesetCensus> {
  if (usesNft) return census(nftRules(await node.inNode('nft', ['list', 'ruleset'])));
  return census(iptablesRules(await node.inNode('iptables-save', [])));
}
