// The protocol layer's pure parts: versions, CNI_ARGS, the environment, names.
import t from 'tap';
import { goField } from '../../src/cni/config.js';
import { checkKnownArgs, parseCniArgs } from '../../src/cni/args.js';
import { configVersion, parseNetConf } from '../../src/cni/config.js';
import { parseInvocation } from '../../src/cni/env.js';
import { ErrorCode, toErrorJson, CniError } from '../../src/cni/errors.js';
import { validateContainerId, validateInterfaceName, validateNetworkName } from '../../src/cni/validate.js';
import { compareVersions, requireSupportedVersion, supportedVersions, versionAtLeast, versionInfo } from '../../src/cni/version.js';

t.test('versions', async (t) => {
  t.strictSame([...supportedVersions], ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
  t.ok(compareVersions('0.10.0', '0.4.0') > 0, 'numeric, not lexical, comparison');
  t.ok(versionAtLeast('1.1.0', '1.0.0'));
  t.notOk(versionAtLeast('0.3.1', '0.4.0'));
  for (const version of supportedVersions) t.doesNotThrow(() => requireSupportedVersion(version), version);
  for (const version of ['9.9.9', '1.2.0', '0.3.2', '1.0', 'v1.0.0', '']) {
    t.throws(() => requireSupportedVersion(version), { code: ErrorCode.IncompatibleVersion }, JSON.stringify(version));
  }
  t.strictSame(versionInfo('0.3.1'), { cniVersion: '0.3.1', supportedVersions: [...supportedVersions] });
  t.equal(versionInfo('9.9.9').cniVersion, '1.1.0', 'an unknown requested version is answered in the latest');
  t.equal(versionInfo(undefined).cniVersion, '1.1.0');
});

t.test('a configuration without cniVersion is 0.1.0', async (t) => {
  t.equal(configVersion({}), '0.1.0');
  t.equal(parseNetConf(Buffer.from('{"name":"n","type":"bridge"}')).cniVersion, '0.1.0');
  t.throws(() => configVersion({ cniVersion: 1 }), { code: ErrorCode.InvalidConfig });
});

t.test('CNI_ARGS', async (t) => {
  t.strictSame([...parseCniArgs('IP=10.0.0.5;K8S_POD_NAME=a=b;;')], [['IP', '10.0.0.5'], ['K8S_POD_NAME', 'a=b']]);
  t.equal(parseCniArgs(undefined).size, 0);
  t.throws(() => parseCniArgs('IP'), { code: ErrorCode.InvalidEnvironment });
  t.throws(() => parseCniArgs('=x'), { code: ErrorCode.InvalidEnvironment });
  t.throws(() => checkKnownArgs(parseCniArgs('IP=1.2.3.4;FOO=1'), ['IP']), { code: ErrorCode.InvalidEnvironment, message: /FOO/ });
  for (const flag of ['1', 'true', 'TRUE']) {
    t.doesNotThrow(() => checkKnownArgs(parseCniArgs(`FOO=1;IgnoreUnknown=${flag}`), ['IP']), `IgnoreUnknown=${flag}`);
  }
  t.throws(() => checkKnownArgs(parseCniArgs('FOO=1;IgnoreUnknown=0'), ['IP']), { code: ErrorCode.InvalidEnvironment });
});

t.test('interface names', async (t) => {
  for (const name of ['eth0', 'a', 'net1.100', 'x'.repeat(15), 'veth-a_b']) t.doesNotThrow(() => validateInterfaceName(name), name);
  for (const name of ['', '.', '..', 'eth0/..', 'a b', 'a\tb', 'a:b', 'x'.repeat(16)]) {
    t.throws(() => validateInterfaceName(name), { code: ErrorCode.InvalidEnvironment }, JSON.stringify(name));
  }
});

t.test('container IDs and network names cannot name a path', async (t) => {
  for (const id of ['abc', 'a.b-c_d', '0123456789abcdef', 'x'.repeat(255)]) t.doesNotThrow(() => validateContainerId(id), id);
  for (const id of ['', '../x', '../../etc', '.hidden', 'a/b', '-a', 'a b', 'x'.repeat(256), 'a\nb']) {
    t.throws(() => validateContainerId(id), { code: ErrorCode.InvalidEnvironment }, JSON.stringify(id));
  }
  for (const name of ['../x', '..', '.', 'a/b', '/abs', '', 5, undefined]) {
    t.throws(() => validateNetworkName(name), { code: ErrorCode.InvalidConfig }, JSON.stringify(name));
  }
  t.equal(validateNetworkName('my-net.1'), 'my-net.1');
});

t.test('the environment each command needs', async (t) => {
  const full = { CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };
  t.strictSame(parseInvocation({ ...full, CNI_COMMAND: 'ADD', CNI_ARGS: 'IP=10.0.0.2' }), {
    command: 'ADD',
    containerId: 'c1',
    netns: '/run/netns/x',
    ifname: 'eth0',
    args: new Map([['IP', '10.0.0.2']]),
    path: ['/opt/cni/bin'],
  });
  for (const name of ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'] as const) {
    const env: Record<string, string> = { ...full, CNI_COMMAND: 'ADD' };
    delete env[name];
    t.throws(() => parseInvocation(env), { code: ErrorCode.InvalidEnvironment, message: new RegExp(name) }, `ADD without ${name}`);
  }
  const { CNI_NETNS: _netns, ...withoutNetns } = full;
  t.doesNotThrow(() => parseInvocation({ ...withoutNetns, CNI_COMMAND: 'DEL' }), 'DEL needs no netns');
  t.doesNotThrow(() => parseInvocation({ CNI_COMMAND: 'STATUS' }), 'STATUS needs nothing');
  t.throws(() => parseInvocation({ ...full, CNI_COMMAND: 'FROB' }), { code: ErrorCode.InvalidEnvironment });
  t.throws(() => parseInvocation({ ...full, CNI_COMMAND: 'ADD', CNI_NETNS: 'relative' }), { code: ErrorCode.InvalidEnvironment });
});

t.test('error JSON', async (t) => {
  t.strictSame(toErrorJson(new CniError(7, 'bad'), '1.0.0'), { cniVersion: '1.0.0', code: 7, msg: 'bad' });
  t.strictSame(toErrorJson(new CniError(5, 'io', 'why'), '0.4.0'), { cniVersion: '0.4.0', code: 5, msg: 'io', details: 'why' });
});

t.test('network configuration', async (t) => {
  const parse = (value: unknown) => parseNetConf(Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)));
  t.throws(() => parse('{"cniVersion":'), { code: ErrorCode.DecodingFailure });
  t.throws(() => parse('[]'), { code: ErrorCode.DecodingFailure });
  t.throws(() => parse({ cniVersion: '1.0.0', name: 'n' }), { code: ErrorCode.InvalidConfig, message: /type/ });
  t.throws(() => parse({ cniVersion: '1.0.0', name: 'n', type: 't', ipam: {} }), { code: ErrorCode.InvalidConfig, message: /ipam/ });
  t.throws(() => parse({ cniVersion: '1.0.0', name: 'n', type: 't', runtimeConfig: [] }), { code: ErrorCode.InvalidConfig });
  t.throws(() => parse({ cniVersion: '1.1.0', name: 'n', type: 't', 'cni.dev/valid-attachments': [{ containerID: 'a' }] }), {
    code: ErrorCode.InvalidConfig,
  });
  const conf = parse({
    cniVersion: '1.1.0',
    name: 'n',
    type: 't',
    'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }],
    dns: { nameservers: ['10.0.0.1'] },
  });
  t.strictSame(conf.validAttachments, [{ containerId: 'a', ifname: 'eth0' }]);
  t.strictSame(conf.dns, { nameservers: ['10.0.0.1'] });
});

t.test('keys are found as Go finds them: exact first, then ignoring case', async (t) => {
  t.equal(goField({ hostPort: 1, HostPort: 2 }, 'hostPort'), 1, 'the exact key wins');
  t.equal(goField({ HostPort: 8080 }, 'hostPort'), 8080, 'a go-cni struct field without a JSON tag');
  t.equal(goField({ HOSTIP: '' }, 'hostIP'), '', 'any case');
  t.equal(goField({ port: 1 }, 'hostPort'), undefined, 'absent');
});
