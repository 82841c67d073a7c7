// The input rules of issue 9 that are pure parsing: interface names in bytes and
// without characters `ip` or the kernel read specially, bounded messages, directories
// for state, reserved subnets, owner labels that fit the kernel's alias, conntrack
// listings, and delegated plugins that fail without a CNI error.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseInvocation } from '../../src/cni/env.js';
import { delegate } from '../../src/cni/delegate.js';
import { parseNetConf } from '../../src/cni/config.js';
import { ErrorCode } from '../../src/cni/errors.js';
import { validateContainerId, validateDirectory, validateInterfaceName, validateNetworkName } from '../../src/cni/validate.js';
import { parseHostLocalConfig } from '../../src/ipam/host-local-config.js';
import { parseRangeSets } from '../../src/ipam/ranges.js';
import { parseBridgeConfig } from '../../src/plugins/bridge/config.js';
import { labelsNetwork, ownerAlias, ownerMatches } from '../../src/plugins/bridge/owner.js';
import { containerAddresses, parsePortmapConfig } from '../../src/plugins/portmap/config.js';
import { execFile } from '../../src/util/exec.js';
import { quote } from '../../src/util/quote.js';

const environment = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };

t.test('interface names are measured in bytes and keep to characters ip passes as is', async (t) => {
  for (const name of ['eth0', 'net1', 'veth-a.b_c', 'up', 'a', 'dev', 'mtu', 'name', 'type', 'help', 'down', 'x@y', 'p+q,r=s', 'x'.repeat(15), 'ifb0', 'if']) {
    t.doesNotThrow(() => validateInterfaceName(name), JSON.stringify(name));
  }
  const refused = ['', '.', '..', 'all', 'default', 'fz%d', 'a#b', 'a"b', "a'b", 'a\\b', 'a b', 'a\nb', 'a/b', 'a:b', 'x'.repeat(16), 'ééééééééé', 'é'.repeat(8), 'if3', 'if+3', 'if-1', 'if0abc'];
  for (const name of refused) {
    t.throws(() => validateInterfaceName(name), { code: ErrorCode.InvalidEnvironment }, `CNI_IFNAME ${JSON.stringify(name)} -> 4`);
  }
  t.throws(() => parseInvocation({ ...environment, CNI_IFNAME: 'ééééééééé' }), { code: ErrorCode.InvalidEnvironment, message: /bytes/ }, '18 bytes in 9 characters');
  t.throws(() => parseInvocation({ ...environment, CNI_IFNAME: 'fz%d' }), { code: ErrorCode.InvalidEnvironment });
  const bridgeConf = (bridge: string) => parseNetConf(Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'trestle-bridge', bridge, ipam: { type: 'x' } })));
  for (const bridge of ['fz%d', 'ééééééééé', 'br#0', 'all']) {
    t.throws(() => parseBridgeConfig(bridgeConf(bridge), parseInvocation(environment)), { code: ErrorCode.InvalidConfig }, `"bridge": ${JSON.stringify(bridge)} -> 7`);
  }
  t.equal(parseBridgeConfig(bridgeConf('up'), parseInvocation(environment)).bridge, 'up', 'a keyword is a valid bridge name');
});

t.test("portmap refuses a previous result's host interface that is no valid name", async (t) => {
  const previous = (name: string) => ({ interfaces: [{ name }, { name: 'eth0', sandbox: '/run/netns/x' }], ips: [{ address: '10.0.0.2/24', interface: 1 }] });
  t.equal(containerAddresses(previous('cni0')).hostInterface, 'cni0');
  for (const name of ['all', 'default', '../../../../../../tmp/x', '..', 'ééééééééé', 'a%d']) {
    t.throws(() => containerAddresses(previous(name)), { code: ErrorCode.InvalidConfig, message: /prevResult\.interfaces\[0\]\.name/ }, JSON.stringify(name));
  }
});

t.test('identifiers: the 255 limit, in bytes', async (t) => {
  t.doesNotThrow(() => validateContainerId('c'.repeat(255)));
  t.throws(() => validateContainerId('c'.repeat(256)), { code: ErrorCode.InvalidEnvironment });
  t.throws(() => validateContainerId(`${'c'.repeat(250)}é`), { code: ErrorCode.InvalidEnvironment });
  t.equal(validateNetworkName('n'.repeat(255)), 'n'.repeat(255));
  t.throws(() => validateNetworkName('n'.repeat(256)), { code: ErrorCode.InvalidConfig });
});

t.test('messages quote values and cut them short', async (t) => {
  t.equal(quote('eth0'), '"eth0"');
  t.equal(quote('a"b\n'), '"a\\"b\\n"');
  t.equal(quote('x'.repeat(10_000)), `"${'x'.repeat(64)}…"`);
  t.equal(quote('😀'.repeat(100)), `"${'😀'.repeat(64)}…"`, 'cut on code points');
  t.equal(quote(5), '5');
  t.equal(quote({ a: 'x'.repeat(100) }).length, 65);
  const huge = 'x'.repeat(10_000);
  const cases: Array<[string, () => unknown]> = [
    ['container ID', () => validateContainerId(`-${huge}`)],
    ['CNI_IFNAME', () => parseInvocation({ ...environment, CNI_IFNAME: huge })],
    ['CNI_NETNS', () => parseInvocation({ ...environment, CNI_NETNS: huge })],
    ['CNI_COMMAND', () => parseInvocation({ ...environment, CNI_COMMAND: huge })],
    ['CNI_ARGS', () => parseInvocation({ ...environment, CNI_ARGS: huge })],
    ['cniVersion', () => parseNetConf(Buffer.from(JSON.stringify({ cniVersion: huge, name: 'n', type: 't' })))],
    ['network name', () => parseNetConf(Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: `-${huge}`, type: 't' })))],
    ['subnet', () => parseRangeSets([[{ subnet: huge }]], 'ipam.ranges')],
    ['dataDir', () => validateDirectory(`/${huge}`, 'ipam.dataDir')],
  ];
  for (const [what, action] of cases) {
    try {
      action();
      t.fail(`${what} was accepted`);
    } catch (error) {
      t.ok((error as Error).message.length < 400, `${what}: ${(error as Error).message.length} characters`);
    }
  }
});

t.test('dataDir and stateDir: absolute, normalized, not under /proc, /sys or /dev', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'trestle-input-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  symlinkSync('/proc/self', join(dir, 'proc-link'));
  t.equal(validateDirectory('/var/lib/cni/networks', 'ipam.dataDir'), '/var/lib/cni/networks');
  t.equal(validateDirectory('/var/lib/cni/networks/', 'ipam.dataDir'), '/var/lib/cni/networks', 'a trailing slash is dropped');
  t.equal(validateDirectory(join(dir, 'new', 'deeper'), 'stateDir'), join(dir, 'new', 'deeper'), 'a directory still to be created');
  const refused = ['relative', '', '/proc', '/proc/self/x', '/sys/fs', '/dev/shm/x', '/var//lib', '/var/./lib', '/var/lib/../../proc/x', '/a\0b', join(dir, 'proc-link', 'x'), `/${'x'.repeat(2000)}`, 5, null];
  for (const value of refused) t.throws(() => validateDirectory(value, 'ipam.dataDir'), { code: ErrorCode.InvalidConfig }, JSON.stringify(value));
  const netConf = (extra: Record<string, unknown>) => parseNetConf(Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 't', ipam: { type: 'x', ranges: [[{ subnet: '10.1.0.0/24' }]] }, ...extra })));
  t.throws(() => parseHostLocalConfig(parseNetConf(Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 't', ipam: { type: 'x', dataDir: '/proc/self/x', ranges: [[{ subnet: '10.1.0.0/24' }]] } }))), new Map()), { code: ErrorCode.InvalidConfig, message: /ipam\.dataDir/ });
  t.throws(() => parseBridgeConfig(netConf({ stateDir: '/sys/x' }), parseInvocation(environment)), { code: ErrorCode.InvalidConfig, message: /stateDir/ });
  t.throws(() => parsePortmapConfig(netConf({ stateDir: '/dev/x' })), { code: ErrorCode.InvalidConfig, message: /stateDir/ });
});

t.test('subnets: no loopback, unspecified, whole-space or multicast ranges', async (t) => {
  for (const subnet of ['10.22.0.0/16', '192.168.0.0/24', 'fd00::/64', '2001:db8::/64', '223.255.255.0/24', '128.0.0.0/8']) {
    t.doesNotThrow(() => parseRangeSets([[{ subnet }]], 'ipam.ranges'), subnet);
  }
  for (const subnet of ['127.0.0.0/8', '127.1.0.0/16', '0.0.0.0/0', '0.0.0.0/8', '::/0', '::/64', '224.0.0.0/24', '239.1.0.0/16', '224.0.0.0/3', 'ff02::/64', 'ff00::/8', '64.0.0.0/2']) {
    t.throws(() => parseRangeSets([[{ subnet }]], 'ipam.ranges'), { code: ErrorCode.InvalidConfig }, subnet);
  }
});

t.test('owner labels fit the kernel alias (255 bytes) and still name their owner', async (t) => {
  const shortOwner = { network: 'net', containerId: 'abc', ifname: 'eth0' };
  t.equal(ownerAlias('net', 'abc', 'eth0'), 'trestle/net/abc/eth0', 'readable when it fits');
  t.ok(ownerMatches('trestle/net/abc/eth0', shortOwner));
  const longId = 'c'.repeat(254) + 'd';
  const longNetwork = 'n'.repeat(255);
  for (const [network, containerId] of [['net', longId], [longNetwork, longId], [longNetwork, 'abc']] as const) {
    const alias = ownerAlias(network, containerId, 'eth0');
    t.ok(Buffer.byteLength(alias) <= 255, `${alias.length} bytes`);
    t.ok(ownerMatches(alias, { network, containerId, ifname: 'eth0' }), 'matches its owner');
    t.notOk(ownerMatches(alias, { network, containerId: `${containerId.slice(0, -1)}e`, ifname: 'eth0' }), 'not another container');
    t.notOk(ownerMatches(alias, { network, containerId, ifname: 'eth1' }), 'not another ifname');
    t.ok(labelsNetwork(alias, network), 'names its network');
    t.notOk(labelsNetwork(alias, 'other'), 'and no other');
  }
  t.match(ownerAlias('net', longId, 'eth0'), /^trestle\/net\/cccccccccccc\+[0-9a-f]{16}\/eth0$/);
  t.notOk(ownerMatches('something else', shortOwner));
  t.notOk(labelsNetwork(undefined, 'net'));
});

t.test('a delegated plugin that fails without a CNI error, prints nothing, or ignores its input', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'trestle-delegate-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'bin'));
  const script = (name: string, body: string) => {
    writeFileSync(join(dir, 'bin', name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(dir, 'bin', name), 0o755);
  };
  script('fails', 'echo "panic: something" >&2; exit 2');
  script('silent', 'exit 0');
  script('garbage', 'echo "not json"');
  script('cni-error', 'echo \'{"cniVersion":"1.0.0","code":11,"msg":"busy","details":"later"}\'; exit 1');
  script('early-exit', 'exit 0');
  script('early-fail', 'exit 1');
  const path = [join(dir, 'bin'), '/usr/bin', '/bin'];
  const stdin = Buffer.from('{}');
  // More than a pipe holds: the write fails with EPIPE when the plugin never reads it.
  const big = Buffer.alloc(1 << 20, 0x20);
  const cases: Array<[string, string, Buffer, number, RegExp]> = [
    ['false', 'ADD', stdin, ErrorCode.HostCommandFailed, /plugin "false" failed with exit status 1/],
    ['false', 'DEL', stdin, ErrorCode.HostCommandFailed, /exit status 1/],
    ['fails', 'ADD', stdin, ErrorCode.HostCommandFailed, /exit status 2/],
    ['true', 'ADD', stdin, ErrorCode.DecodingFailure, /printed no result/],
    ['silent', 'ADD', big, ErrorCode.DecodingFailure, /printed no result/],
    ['garbage', 'ADD', stdin, ErrorCode.DecodingFailure, /not JSON/],
    ['early-fail', 'ADD', big, ErrorCode.HostCommandFailed, /exit status 1/],
    ['cni-error', 'ADD', stdin, 11, /^busy$/],
  ];
  for (const [type, command, input, code, message] of cases) {
    for (let run = 0; run < 3; run++) {
      await t.rejects(delegate(type, command as 'ADD', input, path, { PATH: '/usr/bin:/bin' }), { code, message }, `${type} ${command} (${input.length} bytes in), run ${run + 1}`);
    }
  }
  t.equal(await delegate('early-exit', 'DEL', big, path, { PATH: '/usr/bin:/bin' }), undefined, 'a DEL that exits 0 without reading stdin succeeded');
  const failed = await delegate('fails', 'ADD', stdin, path, { PATH: '/usr/bin:/bin' }).then(
    () => undefined,
    (error: unknown) => error as { details?: string },
  );
  t.match(failed?.details, /panic: something/, 'what the plugin printed is in the details');
  t.equal(execFile('true', [], { input: big }).spawnError, undefined, 'EPIPE is not a spawn error when the program ran');
});
