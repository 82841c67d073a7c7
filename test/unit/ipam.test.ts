// host-local's pure logic: address text, ranges, the round-robin allocator and the
// IPAM configuration, with an in-memory store.
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import t from 'tap';
import { parseCniArgs } from '../../src/cni/args.js';
import { parseNetConf } from '../../src/cni/config.js';
import { ErrorCode } from '../../src/cni/errors.js';
import { allocate } from '../../src/ipam/allocator.js';
import { parseHostLocalConfig } from '../../src/ipam/host-local-config.js';
import { describeRangeSet, parseRange, parseRangeSets } from '../../src/ipam/ranges.js';
import type { Reservation, Store } from '../../src/ipam/store.js';
import { formatAddress, parseAddress, parsePrefix } from '../../src/util/ip.js';

class MemoryStore implements Store {
  readonly held = new Map<string, Reservation>();
  readonly last = new Map<number, string>();

  async withLock<T>(work: () => T | Promise<T>): Promise<T> {
    return work();
  }

  reserve(ip: string, containerId: string, ifname: string, rangeSetIndex: number): boolean {
    if (this.held.has(ip)) return false;
    this.held.set(ip, { ip, containerId, ifname });
    this.last.set(rangeSetIndex, ip);
    return true;
  }

  lastReserved(rangeSetIndex: number): string | undefined {
    return this.last.get(rangeSetIndex);
  }

  list(): Reservation[] {
    return [...this.held.values()];
  }

  heldBy(containerId: string, ifname: string): Reservation[] {
    return this.list().filter((reservation) => reservation.containerId === containerId && reservation.ifname === ifname);
  }

  get(ip: string): Reservation | undefined {
    return this.held.get(ip);
  }

  release(ip: string): void {
    this.held.delete(ip);
  }

  removeDebris(): string[] {
    return [];
  }

  probeWritable(): void {}
}

function address(text: string) {
  const parsed = parseAddress(text);
  if (!parsed) throw new Error(`test bug: ${text} is not an address`);
  return parsed;
}

// parseAddress reads IPv4 itself: ipaddr.js's four-part decimal form, and nothing else.
t.test('IPv4 parses as ipaddr.js parses four decimal parts', async (t) => {
  const byIpaddr = (text: string) =>
    ipaddr.IPv4.isValidFourPartDecimal(text) ? BigInt(ipaddr.IPv4.parse(text).toByteArray().reduce((value, byte) => value * 256 + byte, 0)) : undefined;
  const part = fc.oneof(fc.nat(300).map(String), fc.constantFrom('0', '00', '010', '255', '256', '-1', '', 'x', '1e2', ' 1'));
  const text = fc.oneof(fc.array(part, { minLength: 3, maxLength: 5 }).map((parts) => parts.join('.')), fc.string());
  fc.assert(
    fc.property(text, (candidate) => {
      const parsed = parseAddress(candidate);
      const expected = byIpaddr(candidate);
      if (candidate.includes(':')) return true;
      return expected === undefined ? parsed === undefined : parsed?.family === 4 && parsed.value === expected;
    }),
    { numRuns: 5000 },
  );
  t.pass('5,000 texts agree');
});

t.test('addresses print as Go prints them (the store uses them as file names)', async (t) => {
  const cases: Array<[string, string]> = [
    ['fd00::2', 'fd00::2'],
    ['FD00:0:0:0:0:0:0:2', 'fd00::2'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8:0000:0001:0000:0000:0000:0001', '2001:db8:0:1::1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['::', '::'],
    ['::1', '::1'],
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['10.0.0.1', '10.0.0.1'],
  ];
  for (const [input, printed] of cases) t.equal(formatAddress(address(input)), printed, input);
  for (const bad of ['10.1', '10', '0', '0x0a000001', '010.0.0.1', '010.0.0.1x', '1.2.3.4.5', 'fe80::1%eth0', '../etc', '', 'lock', 'last_reserved_ip.0']) {
    t.equal(parseAddress(bad), undefined, JSON.stringify(bad));
  }
  t.equal(parsePrefix('10.0.0.0/33'), undefined);
  t.equal(parsePrefix('10.0.0.0'), undefined);
});

t.test('range defaults and validation, as the reference host-local', async (t) => {
  const range = parseRange({ subnet: '10.0.0.0/29' }, 'r');
  t.equal(formatAddress({ family: 4, value: range.start }), '10.0.0.1');
  t.equal(formatAddress({ family: 4, value: range.end }), '10.0.0.6', 'the broadcast address is not allocated');
  t.equal(range.gateway && formatAddress(range.gateway), '10.0.0.1');
  const v6 = parseRange({ subnet: 'fd00::/120' }, 'r');
  t.equal(formatAddress({ family: 6, value: v6.end }), 'fd00::ff', 'IPv6 has no broadcast address');
  const bad: Array<[unknown, RegExp]> = [
    [{ subnet: '10.0.0.1/24' }, /host bits/],
    [{ subnet: '10.0.0.0/31' }, /too small/],
    [{ subnet: '10.0.0.0/24', gateway: '10.0.1.1' }, /gateway 10\.0\.1\.1 is not in subnet/],
    [{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.50', rangeEnd: '10.0.0.40' }, /rangeStart is after rangeEnd/],
    [{ subnet: '10.0.0.0/24', rangeEnd: '10.0.1.1' }, /rangeEnd/],
    [{ subnet: 'nope' }, /subnet/],
    [{}, /subnet/],
  ];
  for (const [raw, message] of bad) t.throws(() => parseRange(raw, 'r'), { code: ErrorCode.InvalidConfig, message }, JSON.stringify(raw));
  t.throws(() => parseRangeSets([[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.0.0.0/25' }]], 'ranges'), { message: /overlap/ });
  t.throws(() => parseRangeSets([[{ subnet: '10.0.0.0/24' }, { subnet: 'fd00::/64' }]], 'ranges'), { message: /mixes/ });
  t.throws(() => parseRangeSets([], 'ranges'), { code: ErrorCode.InvalidConfig });
});

t.test('round robin: after the last reserved address, skipping the gateway, wrapping around', async (t) => {
  const [set] = parseRangeSets([[{ subnet: '10.0.0.0/29' }]], 'ranges');
  const store = new MemoryStore();
  const next = (id: string) => allocate(store, set!, 0, id, 'eth0').address;
  t.strictSame(['a', 'b', 'c', 'd', 'e'].map(next), ['10.0.0.2/29', '10.0.0.3/29', '10.0.0.4/29', '10.0.0.5/29', '10.0.0.6/29']);
  t.throws(() => next('f'), { code: ErrorCode.AddressExhausted, message: /10\.0\.0\.1-10\.0\.0\.6/ });
  store.release('10.0.0.3');
  store.release('10.0.0.5');
  t.equal(next('f'), '10.0.0.3/29', 'wraps to the first free address after the last reserved (.6)');
  t.equal(next('g'), '10.0.0.5/29', 'continues after .3, not from the start');
});

t.test('round robin across the ranges of a set', async (t) => {
  const [set] = parseRangeSets([[{ subnet: '10.0.0.0/30' }, { subnet: '10.0.1.0/30' }]], 'ranges');
  const store = new MemoryStore();
  const next = (id: string) => allocate(store, set!, 0, id, 'eth0').address;
  t.strictSame(['a', 'b'].map(next), ['10.0.0.2/30', '10.0.1.2/30']);
  store.release('10.0.0.2');
  t.equal(next('c'), '10.0.0.2/30');
  t.throws(() => next('d'), { code: ErrorCode.AddressExhausted, message: /10\.0\.0\.1-10\.0\.0\.2,10\.0\.1\.1-10\.0\.1\.2/ });
  t.equal(describeRangeSet(set!), '10.0.0.1-10.0.0.2,10.0.1.1-10.0.1.2');
});

t.test('a last reserved address outside the set starts from the beginning', async (t) => {
  const [set] = parseRangeSets([[{ subnet: '10.0.0.0/29' }]], 'ranges');
  const store = new MemoryStore();
  store.last.set(0, '192.168.0.9');
  t.equal(allocate(store, set!, 0, 'a', 'eth0').address, '10.0.0.2/29');
});

t.test('requested addresses', async (t) => {
  const [set] = parseRangeSets([[{ subnet: '10.0.0.0/29' }]], 'ranges');
  const store = new MemoryStore();
  t.strictSame(allocate(store, set!, 0, 'a', 'eth0', address('10.0.0.5')), { address: '10.0.0.5/29', gateway: '10.0.0.1' });
  t.throws(() => allocate(store, set!, 0, 'b', 'eth0', address('10.0.0.5')), { code: ErrorCode.AddressUnavailable, message: /not available/ });
  t.throws(() => allocate(store, set!, 0, 'b', 'eth0', address('10.0.0.1')), { code: ErrorCode.AddressUnavailable, message: /gateway/ });
  t.throws(() => allocate(store, set!, 0, 'b', 'eth0', address('10.0.0.7')), { code: ErrorCode.AddressUnavailable, message: /not in range/ });
});

function hostLocal(conf: Record<string, unknown>, cniArgs = '') {
  const netConf = parseNetConf(Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'bridge', ...conf })));
  return parseHostLocalConfig(netConf, parseCniArgs(cniArgs));
}

t.test('IPAM configuration', async (t) => {
  const ipam = { type: 'host-local', dataDir: '/tmp/x', ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/64' }]] };
  const requested = hostLocal(
    { ipam, args: { cni: { ips: ['fd00::9'] } }, runtimeConfig: { ips: ['10.0.0.9/24'] } },
    'IP=10.0.0.8',
  ).requested.map(formatAddress);
  t.strictSame(requested, ['10.0.0.8', 'fd00::9', '10.0.0.9'], 'CNI_ARGS, args.cni.ips and runtimeConfig.ips, prefix lengths dropped');
  const override = hostLocal({ ipam, runtimeConfig: { ipRanges: [[{ subnet: '192.168.5.0/24' }]] } });
  t.equal(override.rangeSets.length, 1, 'runtimeConfig.ipRanges replaces the configured ranges');
  t.equal(formatAddress(override.rangeSets[0]![0]!.gateway!), '192.168.5.1');
  const legacy = hostLocal({ ipam: { type: 'host-local', subnet: '10.9.0.0/16', ranges: [[{ subnet: 'fd00::/64' }]] } });
  t.equal(legacy.dataDir, '/var/lib/cni/networks', 'default dataDir');
  t.equal(legacy.rangeSets[0]![0]!.subnet.family, 4, 'the single-subnet form comes first');
  t.equal(legacy.rangeSets.length, 2);
  const invalid: Array<[Record<string, unknown>, RegExp]> = [
    [{ ipam: { type: 'host-local' } }, /no address ranges/],
    [{ ipam: { type: 'host-local', ranges: [] } }, /no address ranges|non-empty/],
    [{ ipam: { ...ipam, dataDir: 'relative/dir' } }, /dataDir/],
    [{ ipam: { ...ipam, routes: [{ dst: '10.0.0.0' }] } }, /routes/],
    [{ ipam, args: { cni: { ips: ['../../etc'] } } }, /args\.cni\.ips/],
    [{ ipam, runtimeConfig: { ips: 'x' } }, /runtimeConfig\.ips/],
  ];
  for (const [conf, message] of invalid) t.throws(() => hostLocal(conf), { code: ErrorCode.InvalidConfig, message }, JSON.stringify(conf));
  for (const request of ['../../etc/passwd', '10.0.0.5/../../x', '10.0.0.5/33', '10.0.0.5/']) {
    t.throws(() => hostLocal({ ipam }, `IP=${request}`), { code: ErrorCode.InvalidConfig, message: /CNI_ARGS IP/ }, request);
  }
});
