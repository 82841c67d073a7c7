// Result conversion between the one internal model and every version's shape.
import t from 'tap';
import { parseNetConf } from '../../src/cni/config.js';
import { ErrorCode } from '../../src/cni/errors.js';
import { formatResult, parseResult, type Result } from '../../src/cni/result.js';
import { supportedVersions } from '../../src/cni/version.js';

const legacyVersions = ['0.1.0', '0.2.0'];
const versionedIpVersions = ['0.3.0', '0.3.1', '0.4.0'];

// Every field the model has, including the 1.1-only ones.
const full: Result = {
  interfaces: [
    { name: 'cni0', mac: '02:00:00:00:00:01', mtu: 1500 },
    { name: 'eth0', mac: '02:00:00:00:00:02', mtu: 9000, sandbox: '/run/netns/c1', socketPath: '/run/vhost.sock', pciID: '0000:00:1f.6' },
  ],
  ips: [
    { address: '10.22.0.5/16', gateway: '10.22.0.1', interface: 1 },
    { address: 'fd00::5/64', gateway: 'fd00::1', interface: 1 },
  ],
  routes: [
    { dst: '0.0.0.0/0', gw: '10.22.0.1', mtu: 1400, advmss: 1360, priority: 10, table: 100, scope: 0 },
    { dst: '::/0', gw: 'fd00::1' },
    { dst: '192.168.0.0/16' },
  ],
  dns: { nameservers: ['10.22.0.1'], domain: 'example.test', search: ['example.test'], options: ['ndots:2'] },
};

// What survives a trip through 1.0.0 (and 0.3.x/0.4.0): everything but the 1.1 fields.
const without11: Result = {
  interfaces: [
    { name: 'cni0', mac: '02:00:00:00:00:01' },
    { name: 'eth0', mac: '02:00:00:00:00:02', sandbox: '/run/netns/c1' },
  ],
  ips: full.ips!,
  routes: [{ dst: '0.0.0.0/0', gw: '10.22.0.1' }, { dst: '::/0', gw: 'fd00::1' }, { dst: '192.168.0.0/16' }],
  dns: full.dns!,
};

// What survives 0.1.0/0.2.0: one address per family, its routes, DNS; no interfaces.
const legacy: Result = {
  ips: [{ address: '10.22.0.5/16', gateway: '10.22.0.1' }, { address: 'fd00::5/64', gateway: 'fd00::1' }],
  routes: [{ dst: '0.0.0.0/0', gw: '10.22.0.1' }, { dst: '192.168.0.0/16' }, { dst: '::/0', gw: 'fd00::1' }],
  dns: full.dns!,
};

function expectedAfterTrip(version: string): Result {
  if (legacyVersions.includes(version)) return legacy;
  if (version === '1.1.0') return full;
  return without11;
}

t.test('every supported version is covered here', async (t) => {
  t.strictSame([...supportedVersions], [...legacyVersions, ...versionedIpVersions, '1.0.0', '1.1.0']);
});

for (const version of supportedVersions) {
  t.test(`${version}: format then parse keeps what the version can carry`, async (t) => {
    const printed = formatResult(full, version);
    t.equal(printed['cniVersion'], version, 'cniVersion is the requested one');
    const decoded = parseResult(JSON.parse(JSON.stringify(printed)));
    t.strictSame(decoded, expectedAfterTrip(version));
    t.strictSame(formatResult(decoded, version), printed, 'formatting the parsed result again prints the same JSON');
  });
}

for (const version of legacyVersions) {
  t.test(`${version}: the ip4/ip6 shape`, async (t) => {
    const printed = formatResult(full, version);
    t.strictSame(printed, {
      cniVersion: version,
      ip4: { ip: '10.22.0.5/16', gateway: '10.22.0.1', routes: [{ dst: '0.0.0.0/0', gw: '10.22.0.1' }, { dst: '192.168.0.0/16' }] },
      ip6: { ip: 'fd00::5/64', gateway: 'fd00::1', routes: [{ dst: '::/0', gw: 'fd00::1' }] },
      dns: full.dns,
    });
  });
}

for (const version of versionedIpVersions) {
  t.test(`${version}: ips carry "version", no 1.1 fields`, async (t) => {
    const printed = formatResult(full, version);
    t.strictSame(
      (printed['ips'] as unknown[]).map((ip) => (ip as Record<string, unknown>)['version']),
      ['4', '6'],
    );
    t.strictSame(printed['interfaces'], [
      { name: 'cni0', mac: '02:00:00:00:00:01' },
      { name: 'eth0', mac: '02:00:00:00:00:02', sandbox: '/run/netns/c1' },
    ]);
    t.strictSame(printed['routes'], without11.routes);
  });
}

t.test('1.0.0: no ips[].version and no 1.1 fields', async (t) => {
  const printed = formatResult(full, '1.0.0');
  for (const ip of printed['ips'] as Array<Record<string, unknown>>) t.notOk('version' in ip, `${ip['address']} has no version`);
  t.strictSame(printed['interfaces'], without11.interfaces);
  t.strictSame(printed['routes'], without11.routes);
});

t.test('1.1.0: route mtu/advmss/priority/table/scope and interface mtu/socketPath/pciID', async (t) => {
  const printed = formatResult(full, '1.1.0');
  for (const ip of printed['ips'] as Array<Record<string, unknown>>) t.notOk('version' in ip, `${ip['address']} has no version`);
  t.strictSame((printed['routes'] as unknown[])[0], { dst: '0.0.0.0/0', gw: '10.22.0.1', mtu: 1400, advmss: 1360, priority: 10, table: 100, scope: 0 });
  t.strictSame((printed['interfaces'] as unknown[])[1], full.interfaces![1]);
});

t.test('an empty result still prints "dns", as the reference plugins do', async (t) => {
  for (const version of supportedVersions) t.strictSame(formatResult({}, version), { cniVersion: version, dns: {} }, version);
});

// A result as each version's producer prints it, as prevResult or from a delegated IPAM.
const printedByVersion: Record<string, unknown> = {
  '0.1.0': { cniVersion: '0.1.0', ip4: { ip: '10.1.0.2/24', gateway: '10.1.0.1' }, dns: {} },
  '0.2.0': { cniVersion: '0.2.0', ip4: { ip: '10.1.0.2/24', gateway: '10.1.0.1', routes: [{ dst: '0.0.0.0/0' }] }, ip6: { ip: 'fd01::2/64' }, dns: {} },
  '0.3.0': { cniVersion: '0.3.0', interfaces: [{ name: 'eth0', sandbox: '/run/netns/x' }], ips: [{ version: '4', address: '10.1.0.2/24', interface: 0 }], dns: {} },
  '0.3.1': { cniVersion: '0.3.1', ips: [{ version: '4', address: '10.1.0.2/24', gateway: '10.1.0.1' }], routes: [{ dst: '0.0.0.0/0' }], dns: {} },
  '0.4.0': { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.1.0.2/24' }], dns: {} },
  '1.0.0': { cniVersion: '1.0.0', ips: [{ address: '10.1.0.2/24', gateway: '10.1.0.1' }], dns: {} },
  '1.1.0': { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', mtu: 1500 }], ips: [{ address: '10.1.0.2/24', interface: 0 }], routes: [{ dst: '0.0.0.0/0', table: 7 }] },
};

for (const [prevVersion, prevResult] of Object.entries(printedByVersion)) {
  t.test(`a ${prevVersion} prevResult is accepted by a configuration of every version`, async (t) => {
    for (const version of supportedVersions) {
      const conf = parseNetConf(Buffer.from(JSON.stringify({ cniVersion: version, name: 'n', type: 'bridge', prevResult })));
      t.equal(conf.prevResult?.ips?.[0]?.address, '10.1.0.2/24', `in a ${version} configuration`);
    }
  });
}

t.test('a legacy prevResult keeps both families and their routes', async (t) => {
  t.strictSame(parseResult(printedByVersion['0.2.0']), {
    ips: [{ address: '10.1.0.2/24', gateway: '10.1.0.1' }, { address: 'fd01::2/64' }],
    routes: [{ dst: '0.0.0.0/0' }],
    dns: {},
  });
});

t.test('a malformed result is a decoding failure (code 6)', async (t) => {
  const bad: unknown[] = [
    [],
    'x',
    { ips: [{ gateway: '10.0.0.1' }] },
    { ips: ['10.0.0.2/24'] },
    { ips: [{ address: 5 }] },
    { ips: [{ address: '10.0.0.2/24', interface: 'eth0' }] },
    { routes: [{ gw: '10.0.0.1' }] },
    { routes: [{ dst: '0.0.0.0/0', mtu: 1.5 }] },
    { interfaces: [{ mac: 'x' }] },
    { ip4: { gateway: '10.0.0.1' } },
    { dns: { nameservers: '10.0.0.1' } },
  ];
  for (const raw of bad) {
    t.throws(() => parseResult(raw), { code: ErrorCode.DecodingFailure }, JSON.stringify(raw));
  }
  const conf = Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'bridge', prevResult: { ips: [{}] } }));
  t.throws(() => parseNetConf(conf), { code: ErrorCode.DecodingFailure, message: /prevResult/ }, 'a bad prevResult fails the configuration');
});
