// Generated CNI calls for the fuzz suite: a valid call of one plugin and one command,
// then at most one thing changed (an environment variable, a configuration key, the
// whole stdin). Each case says what the answer must be where the spec decides it:
// success for valid input (keyword names, 255-character IDs...), failure for what
// must be refused (hostile paths, the node's own namespace...), either otherwise.
import fc from 'fast-check';
import { requiredVariables } from '../../../src/cni/env.js';
import { minimumVersion } from '../../../src/cni/skel.js';
import { supportedVersions, versionAtLeast } from '../../../src/cni/version.js';

export const pluginTypes = ['trestle-bridge', 'trestle-host-local', 'trestle-portmap'] as const;
export type PluginType = (typeof pluginTypes)[number];
export const commands = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'] as const;
export type Command = (typeof commands)[number];
export type Expectation = 'success' | 'failure' | 'either';
type Json = Record<string, any>;

// What the generators need to know about the sandbox the cases run in.
export interface FuzzContext {
  id: string;
  network: string;
  bridge: string;
  sandboxDir: string;
  dataDir: string;
  stateDir: string;
  // An empty directory that hostile paths aim at (through ../ or /proc/self/cwd).
  escapeDir: string;
  containers: string[];
  nodePath: string;
  plainFile: string;
  cniPath: string;
  // A real attachment kept for the whole run, in a container of its own: portmap's
  // previous result, and an attachment GC must leave alone.
  kept: { containerId: string; netns: string; ifname: string; result: Json };
}

export interface FuzzCase {
  plugin: PluginType;
  command: Command;
  // What was changed from the valid call, for grouping failures.
  mutation: string;
  expect: Expectation;
  // Only the variables that are set (PATH aside).
  env: Record<string, string>;
  stdin: string;
  // stdin holds raw bytes (latin1), not UTF-8 text.
  binary?: true;
  // The container namespace of the valid call, to inspect after an ADD.
  container: string;
}

// `ip` keywords that are valid interface names: a name is never read as a keyword.
export const keywordNames = ['up', 'down', 'dev', 'name', 'mtu', 'type', 'a', 'link', 'addr', 'master', 'nomaster', 'help', 'netns', 'to', 'via', 'table', 'peer', 'add', 'del', 'set', 'show', 'on', 'off', 'alias', 'group', 'address'];
// Names the kernel takes but a script, a comment or a format string might not.
const awkwardNames = ['a"b', "a'b", 'a#b', '#', '{a}', 'a}{', 'fz%d', '%s%n', 'a;b', 'a=b', 'a\\b', '$(id)', '`id`', 'a,b', 'éé', '日本', '🙂x', 'all', 'default', 'a"#{%'];
// Names no interface may have: too long (also in bytes), separators, whitespace.
const invalidNames = ['', 'a b', 'a\nb', 'a\tb', 'a/b', '../x', '.', '..', 'a:b', 'x'.repeat(16), 'ééééééééé', '日本語日本語', '🙂🙂🙂🙂', 'x'.repeat(10240)];
// Strings no identifier (container ID, network name) may be.
const invalidIdentifiers = ['', '-a', '.a', '_a', 'a b', 'a"b', 'a/b', '../x', 'a\nb', 'a%d', 'a#b', '{a}', 'é', 'x'.repeat(256), 'x'.repeat(10240), 'a\u0000b'];
const identifierChars = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-'];
const longIdentifier = fc.string({ unit: fc.constantFrom(...identifierChars), minLength: 254, maxLength: 254 }).map((tail) => `c${tail}`);
const validIdentifier = fc.oneof(fc.constantFrom('a', '0', 'A.b-c_d', 'x'.repeat(255)), longIdentifier);

const tenKb = 'x'.repeat(10240);
function nested(depth: number, leaf: unknown = 1): unknown {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
}
function nestedText(depth: number): string {
  return `${'['.repeat(depth)}${']'.repeat(depth)}`;
}
// JSON text spliced into the configuration as it is: deeper than JSON.stringify goes.
interface RawJson {
  rawJson: string;
}
const rawPlaceholder = '__fuzz_raw_json__';
function isRawJson(value: unknown): value is RawJson {
  return typeof value === 'object' && value !== null && typeof (value as RawJson).rawJson === 'string';
}

// Any JSON value, for "wrong type" mutations: small ones, huge ones, deep ones.
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(null, true, false, 0, -1, 1.5, 1e308, '', tenKb, [], {}, [[[[]]]], nested(1000)),
  fc.integer(),
  fc.string({ maxLength: 20 }),
  fc.jsonValue({ maxDepth: 3 }),
);

// A change to the valid call. Data only, so fast-check can print and shrink it.
interface Mutation {
  label: string;
  target: string;
  value?: unknown;
  remove?: true;
  // Expected outcome per command; commands not listed: either.
  expect?: Partial<Record<Command, Expectation>>;
}

const allButVersion = (outcome: Expectation): Partial<Record<Command, Expectation>> => ({ ADD: outcome, DEL: outcome, CHECK: outcome, STATUS: outcome, GC: outcome });
const onAdd = (outcome: Expectation): Partial<Record<Command, Expectation>> => ({ ADD: outcome });
// Valid input: every command answers as for the unchanged call.
const valid: Partial<Record<Command, Expectation>> = { ADD: 'success', DEL: 'success', STATUS: 'success', GC: 'success' };

function mutation(label: string, target: string, values: fc.Arbitrary<unknown>, expect?: Mutation['expect']): fc.Arbitrary<Mutation> {
  return values.map((value) => (expect === undefined ? { label, target, value } : { label, target, value, expect }));
}
const constants = (...values: unknown[]) => fc.constantFrom(...values);

function envMutations(ctx: FuzzContext, plugin: PluginType): fc.Arbitrary<Mutation>[] {
  const list: fc.Arbitrary<Mutation>[] = [
    mutation('CNI_COMMAND invalid', 'env.CNI_COMMAND', constants('', 'add', 'ADD ', 'FOO', 'VERSION\n', 'DEL;ADD', tenKb), { ...allButVersion('failure'), VERSION: 'failure' }),
    fc.constantFrom(...['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH', 'CNI_ARGS']).map((name) => ({ label: `${name} unset`, target: `env.${name}`, remove: true as const })),
    mutation('CNI_CONTAINERID valid', 'env.CNI_CONTAINERID', validIdentifier, valid),
    mutation('CNI_CONTAINERID invalid', 'env.CNI_CONTAINERID', constants(...invalidIdentifiers.filter((id) => id !== '')), allButVersion('failure')),
    mutation('CNI_IFNAME keyword', 'env.CNI_IFNAME', constants(...keywordNames), valid),
    mutation('CNI_IFNAME awkward', 'env.CNI_IFNAME', constants(...awkwardNames)),
    mutation('CNI_IFNAME invalid', 'env.CNI_IFNAME', constants(...invalidNames.filter((name) => name !== '')), allButVersion('failure')),
    // Only trestle-bridge enters CNI_NETNS; the others merely carry it.
    mutation('CNI_NETNS the node itself', 'env.CNI_NETNS', constants(ctx.nodePath, '/proc/self/ns/net', '/proc/thread-self/ns/net'), plugin === 'trestle-bridge' ? { ADD: 'failure', CHECK: 'failure' } : {}),
    mutation('CNI_NETNS not a network namespace', 'env.CNI_NETNS', constants('/proc/self/ns/mnt', '/proc/self/ns/uts', ctx.plainFile, ctx.sandboxDir, '/dev/null', `${ctx.sandboxDir}/missing`), plugin === 'trestle-bridge' ? { ADD: 'failure', CHECK: 'failure' } : {}),
    mutation('CNI_NETNS invalid', 'env.CNI_NETNS', constants('netns', './x', '../../run/netns/x', 'a\nb', tenKb), allButVersion('failure')),
    mutation('CNI_PATH odd', 'env.CNI_PATH', constants('/nonexistent', 'relative/dir', ':::', `${ctx.cniPath}:/usr/bin`, `/usr/bin:${ctx.cniPath}`, tenKb)),
    mutation('CNI_ARGS valid', 'env.CNI_ARGS', constants('IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u', 'K8S_POD_NAME=p;IgnoreUnknown=true', 'IgnoreUnknown=1', ''), valid),
    mutation('CNI_ARGS odd', 'env.CNI_ARGS', constants('novalue', '=x', ';;;', 'IP=', 'IP=300.1.1.1', 'IP=10.99.0.0', 'IP=10.1.2.3', 'IP=fe80::1', 'MAC=ff:ff:ff:ff:ff:ff', 'MAC=zz', 'K=V\n', 'K="{%#}"', `K=${tenKb}`, 'IgnoreUnknown=1;IP=10.99.0.77,10.99.0.77', 'IgnoreUnknown=1;IP=10.99.0.200,fd99::200')),
  ];
  if (plugin !== 'trestle-portmap') list.push(mutation('CNI_ARGS IP', 'env.CNI_ARGS', constants(plugin === 'trestle-bridge' ? 'IP=10.99.0.77' : 'IP=10.98.0.77', 'IgnoreUnknown=1;IP=10.99.0.78;IP=10.98.0.78'), {}));
  if (plugin === 'trestle-bridge') list.push(mutation('CNI_ARGS MAC', 'env.CNI_ARGS', constants('MAC=02:42:ac:11:00:99', 'MAC=02:42:AC:11:00:9A'), valid));
  return list;
}

function stdinMutations(): fc.Arbitrary<Mutation>[] {
  const notConfig = ['', ' ', '{', 'null', '[]', '"x"', '0', 'true', '{"cniVersion":"1.0.0"', '{}', '{"name":"x","type":"y"}garbage', nestedText(100000), `{"a":${'{"a":'.repeat(10000)}1${'}'.repeat(10000)}}`];
  return [
    mutation('stdin not a configuration', 'stdin', constants(...notConfig), { ...allButVersion('failure'), VERSION: 'success' }),
    mutation('stdin raw bytes', 'stdin.binary', constants('\xff\xfe\x00{', '\xc3\x28', '{"name":"\xff"}', '\x00'.repeat(100)), { ...allButVersion('failure'), VERSION: 'success' }),
    mutation('stdin fuzz', 'stdin', fc.string({ maxLength: 200, unit: 'binary' })),
  ];
}

// Subnets a network may not be made of: loopback, everything, multicast.
const refusedSubnets = ['127.0.0.0/8', '127.0.0.0/24', '0.0.0.0/0', '::/0', '224.0.0.0/24', 'ff02::/64', '::1/128'];
const malformedSubnets = ['10.97.0.0/33', '10.97.0.0', 'x', '', '10.97.0.0/24/1', 'fd97::/129', ' 10.97.0.0/24'];

function configMutations(ctx: FuzzContext, plugin: PluginType): fc.Arbitrary<Mutation>[] {
  const hostilePaths = [`${ctx.dataDir}/../${ctx.escapeDir.split("/").pop() ?? "escape"}`, `${ctx.dataDir}/..`, 'ipam', './state', '/proc/fz', '/proc/sys/net/fz', '/proc/self/cwd/fz', '/sys/class/net/fz'];
  const list: fc.Arbitrary<Mutation>[] = [
    mutation('cniVersion unknown', 'cniVersion', constants('2.0.0', '1.2.0', '0.5.0', '1.1', 'x', '01.0.0', '1.0.0 ', '1.0.0\n', tenKb), allButVersion('failure')),
    mutation('cniVersion wrong type', 'cniVersion', constants(1.1, 1, true, null, {}, []), allButVersion('failure')),
    mutation('name valid', 'name', validIdentifier, valid),
    mutation('name invalid', 'name', constants(...invalidIdentifiers, 5, null, ['a']), allButVersion('failure')),
    fc.constantFrom('name', 'type').map((key) => ({ label: `${key} missing`, target: key, remove: true as const, expect: allButVersion('failure') })),
    mutation('unknown key with a huge value', 'zzUnknown', constants(tenKb, 'x'.repeat(100000), nested(1000), { rawJson: `${'{"a":'.repeat(10000)}1${'}'.repeat(10000)}` }, { rawJson: nestedText(100000) }, Array.from({ length: 10000 }, (_, i) => i)), valid),
    mutation('args wrong type', 'args', constants('x', 5, [], true), allButVersion('failure')),
    mutation('runtimeConfig wrong type', 'runtimeConfig', constants('x', 5, [], true), allButVersion('failure')),
    mutation('dns odd', 'dns', anyValue),
    // Any key of the valid configuration replaced or removed. dataDir and stateDir
    // are never removed: their defaults are the node's real directories.
    mutation('key wrong type', '*', anyValue),
    fc.constant({ label: 'key missing', target: '*', remove: true as const }),
  ];
  if (plugin !== 'trestle-portmap') {
    list.push(
      mutation('ipam.dataDir hostile', 'ipam.dataDir', constants(...hostilePaths), allButVersion('failure')),
      mutation('subnet refused', 'ipam.ranges', constants(...refusedSubnets).map((subnet) => [[{ subnet }]]), onAdd('failure')),
      mutation('subnet malformed', 'ipam.ranges', constants(...malformedSubnets).map((subnet) => [[{ subnet }]]), onAdd('failure')),
      mutation('ranges odd', 'ipam.ranges', constants([], [[]], [[{}]], [[{ subnet: '10.97.0.0/24', rangeStart: '10.97.0.200', rangeEnd: '10.97.0.100' }]], [[{ subnet: '10.97.0.0/24', gateway: '10.1.1.1' }]], [[{ subnet: '10.97.0.0/31' }]], [[{ subnet: '10.97.0.0/32' }]], Array.from({ length: 1000 }, (_, i) => [{ subnet: `10.${100 + (i >> 8)}.${i & 255}.0/24` }]))),
      mutation('ipam.routes odd', 'ipam.routes', constants([{ dst: 'x' }], [{ dst: '10.0.0.0/8', gw: 'x' }], [{ dst: '10.0.0.1' }], 'x', [{}], Array.from({ length: 500 }, (_, i) => ({ dst: `172.16.${i & 255}.0/24` })))),
      mutation('ipam.resolvConf odd', 'ipam.resolvConf', constants(ctx.sandboxDir, `${ctx.sandboxDir}/missing`, '/dev/null', 5), {}),
      mutation('runtimeConfig.ips valid', 'runtimeConfig.ips', constants(plugin === 'trestle-bridge' ? ['10.99.0.81/24'] : ['10.98.0.81/24'], plugin === 'trestle-bridge' ? ['10.99.0.82'] : ['10.98.0.82']), valid),
      mutation('runtimeConfig.ips invalid', 'runtimeConfig.ips', constants(['x'], ['10.1.2.3'], ['10.99.0.0'], ['10.99.0.255'], ['127.0.0.1'], '10.99.0.5', [5], [tenKb]), onAdd('failure')),
      mutation('runtimeConfig.ipRanges valid', 'runtimeConfig.ipRanges', constants([[{ subnet: '10.97.0.0/24' }]], [[{ subnet: '10.97.0.0/24', rangeStart: '10.97.0.10', rangeEnd: '10.97.0.20' }]]), valid),
      mutation('runtimeConfig.ipRanges refused', 'runtimeConfig.ipRanges', constants(...refusedSubnets, ...malformedSubnets).map((subnet) => [[{ subnet }]]), onAdd('failure')),
      mutation('args.cni.ips', 'args', constants({ cni: { ips: [plugin === 'trestle-bridge' ? '10.99.0.83' : '10.98.0.83'] } }), valid),
      mutation('args.cni.ips invalid', 'args', constants({ cni: { ips: ['x'] } }, { cni: { ips: 'x' } }, { cni: { ips: ['300.0.0.1'] } }), onAdd('failure')),
    );
  }
  if (plugin !== 'trestle-host-local') list.push(mutation('stateDir hostile', 'stateDir', constants(...hostilePaths), allButVersion('failure')));
  if (plugin === 'trestle-bridge') {
    list.push(
      // trestle-host-local is the IPAM plugin itself: only the bridge reads ipam.type.
      mutation('ipam.type delegated', 'ipam.type', constants('true', 'false', 'nonexistent', 'host-local', 'trestle-host-local-x')),
      mutation('ipam.type invalid', 'ipam.type', constants('../../../bin/true', '/bin/true', './true', 'a b', tenKb), { ADD: 'failure' }),
      mutation('bridge keyword', 'bridge', constants(...keywordNames), valid),
      mutation('bridge awkward', 'bridge', constants(...awkwardNames)),
      mutation('bridge invalid', 'bridge', constants(...invalidNames, 'lo', 5, null, []), onAdd('failure')),
      mutation('mtu invalid', 'mtu', constants(67, 65536, -1, 1.5, '1500', 1e308, true), onAdd('failure')),
      mutation('flag wrong type', 'ipMasq', constants('true', 1, 'yes', {}), onAdd('failure')),
      mutation('unsupported key', 'vlan', constants(5, 100), onAdd('failure')),
      mutation('ipMasqBackend', 'ipMasqBackend', constants('iptables', '', 5), onAdd('failure')),
      mutation('ipam missing', 'ipam', constants(null, 'x', {}, { type: '' }), allButVersion('failure')),
      mutation('runtimeConfig.mac valid', 'runtimeConfig.mac', constants('02:42:ac:11:00:09', '02:42:AC:11:00:0A', ''), valid),
      mutation('runtimeConfig.mac invalid', 'runtimeConfig.mac', constants('zz', '01:00:5e:00:00:01', 'ff:ff:ff:ff:ff:ff', '00:00:00:00:00:00', '02:42:ac:11:00', 5, tenKb), onAdd('failure')),
      mutation('args.cni.mac invalid', 'args', constants({ cni: { mac: 'zz' } }, { cni: { mac: 5 } }), onAdd('failure')),
      mutation('prevResult hostile', 'prevResult', prevResultHostile(ctx)),
    );
  }
  if (plugin === 'trestle-portmap') {
    list.push(
      mutation('portMappings valid', 'runtimeConfig.portMappings', portMappingsValid, valid),
      mutation('portMappings invalid', 'runtimeConfig.portMappings', portMappingsInvalid, { ADD: 'failure' }),
      mutation('portMappings many', 'runtimeConfig.portMappings', fc.constantFrom(1000, 3000).map((count) => Array.from({ length: count }, (_, i) => ({ hostPort: 20000 + i, containerPort: 80, protocol: 'udp' }))), valid),
      mutation('snat wrong type', 'snat', constants('no', 0, {}), onAdd('failure')),
      mutation('unsupported key', 'backend', constants('iptables', 'nftables'), onAdd('failure')),
      mutation('prevResult missing', 'prevResult', constants(null), { ADD: 'failure' }),
      mutation('prevResult hostile', 'prevResult', prevResultHostile(ctx)),
      mutation('prevResult wrong shape', 'prevResult', fc.oneof(anyValue, constants({ ips: 'x' }, { ips: [{ address: 'x' }] }, { ips: [{ address: '10.99.0.50/24', interface: 7 }] }, { ips: [{ address: '10.99.0.50/24', interface: -1 }] }, { ips: [] }, { interfaces: 'x' }))),
    );
  }
  return list;
}

// A go-cni runtime sends Go's field names; JSON runtimes the tagged ones.
const portMapping = fc.record({ hostPort: fc.integer({ min: 1024, max: 65535 }), containerPort: fc.integer({ min: 1, max: 65535 }), protocol: fc.constantFrom('tcp', 'udp', 'sctp', 'TCP', 'UDP'), hostIP: fc.constantFrom('', '0.0.0.0') });
const portMappingsValid = fc
  .uniqueArray(portMapping, { minLength: 1, maxLength: 4, selector: (mapping) => mapping.hostPort })
  .chain((mappings) => fc.boolean().map((goForm) => (goForm ? mappings.map((m) => ({ HostPort: m.hostPort, ContainerPort: m.containerPort, Protocol: m.protocol.toUpperCase(), HostIP: m.hostIP })) : mappings)));
const portMappingsInvalid = fc.constantFrom<unknown>(
  'x',
  {},
  [5],
  [{ hostPort: 0, containerPort: 80 }],
  [{ hostPort: 65536, containerPort: 80 }],
  [{ hostPort: -1, containerPort: 80 }],
  [{ hostPort: 80.5, containerPort: 80 }],
  [{ hostPort: '80', containerPort: 80 }],
  [{ hostPort: 8080, containerPort: 0 }],
  [{ hostPort: 8080, containerPort: 80, protocol: 'icmp' }],
  [{ hostPort: 8080, containerPort: 80, protocol: 5 }],
  [{ hostPort: 8080, containerPort: 80, hostIP: 'x' }],
  [{ hostPort: 8080, containerPort: 80, hostIP: tenKb }],
  [{ HostPort: 8080, ContainerPort: 80 }, { hostPort: 8080, containerPort: 81 }],
  [{ hostPort: 8080 }],
);

// A previous result whose host interface name is hostile: it names a sysctl
// directory (all, default), walks out of /proc (../), or is no name at all.
function prevResultHostile(ctx: FuzzContext): fc.Arbitrary<unknown> {
  const escape = `../../../../../..${ctx.escapeDir}`;
  const names = fc.constantFrom('all', 'default', escape, `${escape}/x`, 'lo', ctx.bridge, ...keywordNames.slice(0, 4), ...awkwardNames, ...invalidNames);
  return names.map((name) => ({
    cniVersion: '1.0.0',
    interfaces: [{ name }, { name: 'eth0', sandbox: ctx.kept.netns }],
    ips: [{ address: '10.99.0.50/24', interface: 1, gateway: '10.99.0.1' }],
  }));
}

function prevResult(ctx: FuzzContext, version: string): Json {
  return { ...ctx.kept.result, cniVersion: version };
}

// The fuzzed network's trestle-bridge: dual stack, masquerade, hairpin.
export function bridgeConfig(ctx: Pick<FuzzContext, 'network' | 'bridge' | 'stateDir' | 'dataDir'>, version: string): Json {
  return {
    cniVersion: version,
    name: ctx.network,
    type: 'trestle-bridge',
    bridge: ctx.bridge,
    isDefaultGateway: true,
    ipMasq: true,
    hairpinMode: true,
    stateDir: ctx.stateDir,
    ipam: { type: 'trestle-host-local', dataDir: ctx.dataDir, ranges: [[{ subnet: '10.99.0.0/24' }], [{ subnet: 'fd99::/64' }]] },
  };
}

function baseConfig(ctx: FuzzContext, plugin: PluginType, command: Command, version: string): Json {
  const common = { cniVersion: version, name: ctx.network };
  let config: Json;
  switch (plugin) {
    case 'trestle-bridge':
      config = bridgeConfig(ctx, version);
      break;
    case 'trestle-host-local':
      // As trestle-bridge hands it over: the whole network configuration.
      config = { ...common, type: 'trestle-bridge', ipam: { type: plugin, dataDir: ctx.dataDir, ranges: [[{ subnet: '10.98.0.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] } };
      break;
    case 'trestle-portmap':
      config = {
        ...common,
        type: plugin,
        snat: true,
        stateDir: ctx.stateDir,
        capabilities: { portMappings: true },
        runtimeConfig: { portMappings: [{ hostPort: 18080, containerPort: 80, protocol: 'tcp' }] },
        prevResult: prevResult(ctx, version),
      };
      break;
  }
  if (command === 'GC') config['cni.dev/valid-attachments'] = [{ containerID: ctx.kept.containerId, ifname: ctx.kept.ifname }];
  return config;
}

// Every key path of a JSON value, parents first (for "key wrong type"/"key missing").
function keyPaths(value: unknown, prefix = ''): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [];
  return Object.entries(value).flatMap(([key, child]) => [`${prefix}${key}`, ...keyPaths(child, `${prefix}${key}.`)]);
}

function setPath(config: Json, path: string, value: unknown, remove: boolean): void {
  const keys = path.split('.');
  let parent: Json = config;
  for (const key of keys.slice(0, -1)) {
    if (typeof parent[key] !== 'object' || parent[key] === null || Array.isArray(parent[key])) parent[key] = {};
    parent = parent[key] as Json;
  }
  const last = keys[keys.length - 1] as string;
  if (remove) delete parent[last];
  else parent[last] = value;
}

function expectation(command: Command, version: string | undefined, change: Mutation | undefined, plugin: PluginType): Expectation {
  if (change?.target === 'env.CNI_COMMAND') return 'failure';
  if (command === 'VERSION') return 'success';
  if (change?.remove && change.target.startsWith('env.')) return (requiredVariables[command] as readonly string[]).includes(change.target.slice(4)) ? 'failure' : 'either';
  // An older configuration may not ask for a newer command, whatever else it says.
  const minimum = minimumVersion[command];
  if (minimum !== undefined && version !== undefined && !versionAtLeast(version, minimum)) return 'failure';
  // The unchanged call: CHECK has no attachment to find; portmap's previous result
  // has the 0.3.0+ shape.
  const unchanged: Expectation = command === 'CHECK' || (plugin === 'trestle-portmap' && version !== undefined && !versionAtLeast(version, '0.3.0')) ? 'either' : 'success';
  if (change === undefined) return unchanged;
  const stated = change.expect?.[command] ?? 'either';
  // A valid change cannot make a call succeed that would fail unchanged.
  return stated === 'success' && unchanged !== 'success' ? 'either' : stated;
}

function build(ctx: FuzzContext, plugin: PluginType, command: Command, version: string, container: string, change: Mutation | undefined, pick: number): FuzzCase {
  const env: Record<string, string> = { CNI_COMMAND: command, CNI_CONTAINERID: `fz-${ctx.id}`, CNI_NETNS: container, CNI_IFNAME: 'eth0', CNI_PATH: ctx.cniPath };
  const config = baseConfig(ctx, plugin, command, version);
  let stdin: string | undefined;
  let binary: true | undefined;
  let label = 'unchanged';
  let replaced = false;
  let effective = change;
  if (change !== undefined) {
    label = change.label;
    if (change.target.startsWith('env.')) {
      const name = change.target.slice(4);
      if (change.remove) delete env[name];
      else env[name] = String(change.value);
    } else if (change.target === 'stdin' || change.target === 'stdin.binary') {
      replaced = true;
      stdin = String(change.value);
      if (change.target === 'stdin.binary') binary = true;
    } else {
      let target = change.target;
      if (target === '*') {
        const paths = keyPaths(config).filter((path) => !(change.remove && /(^|\.)(dataDir|stateDir)$/.test(path)));
        target = paths[pick % paths.length] as string;
        label = `${change.label} (${target.replace(/\.\d+(\.|$)/g, '[]$1')})`;
        effective = { ...change, target };
      }
      setPath(config, target, isRawJson(change.value) ? rawPlaceholder : change.value, change.remove === true);
      if (isRawJson(change.value)) stdin = JSON.stringify(config).replace(JSON.stringify(rawPlaceholder), change.value.rawJson);
    }
  }
  const versionNow = typeof config['cniVersion'] === 'string' && (supportedVersions as readonly string[]).includes(config['cniVersion']) ? config['cniVersion'] : undefined;
  const fuzzCase: FuzzCase = {
    plugin,
    command,
    mutation: label,
    expect: expectation(command, replaced ? undefined : versionNow, effective, plugin),
    env,
    stdin: stdin ?? JSON.stringify(config),
    container,
  };
  if (binary) fuzzCase.binary = binary;
  return fuzzCase;
}

// One generated case. Versions lean to 1.1.0 (every command allowed) and mutations
// to one per case, with a few unchanged calls to prove the valid path.
export function caseArbitrary(ctx: FuzzContext): fc.Arbitrary<FuzzCase> {
  return fc.constantFrom(...pluginTypes).chain((plugin) =>
    fc
      .record({
        command: fc.constantFrom(...commands),
        version: fc.oneof({ weight: 3, arbitrary: fc.constant('1.1.0') }, { weight: 2, arbitrary: fc.constantFrom(...supportedVersions) }),
        container: fc.constantFrom(...ctx.containers),
        change: fc.option(fc.oneof(...envMutations(ctx, plugin), ...stdinMutations(), ...configMutations(ctx, plugin)), { freq: 8, nil: undefined }),
        pick: fc.nat(),
      })
      .map(({ command, version, container, change, pick }) => build(ctx, plugin, command, version, container, change, pick)),
  );
}
