// Every error code trestle-host-local reports, each from a real bad input, checked on
// what a runtime sees: exit status, stdout JSON, nothing else on stdout.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { attachCall, invoke, network, tempDir, trestleHostLocal, type Call, type Json, type Outcome } from '../helpers/host-local.js';

function expectError(t: Test, outcome: Outcome, code: number, message: RegExp, cniVersion?: string): void {
  t.not(outcome.exitCode, 0, 'non-zero exit status');
  t.ok(outcome.json, `stdout is one JSON object: ${outcome.stdout}`);
  const error = outcome.json ?? {};
  t.equal(error['code'], code, `code ${code}`);
  t.match(error['msg'], message);
  t.type(error['cniVersion'], 'string', 'cniVersion present');
  if (cniVersion !== undefined) t.equal(error['cniVersion'], cniVersion, `answered in ${cniVersion}`);
  t.strictSame(Object.keys(error).filter((key) => !['cniVersion', 'code', 'msg', 'details'].includes(key)), [], 'no other keys');
  t.notMatch(outcome.stdout, /\n\s+at /, 'no stack trace on stdout');
}

function addCall(overrides: Partial<Call> = {}): Call {
  return { ...attachCall('ADD', { containerId: 'c1' }), ...overrides };
}

t.test('VERSION lists all seven versions', async (t) => {
  const plain = await invoke(trestleHostLocal, { command: 'VERSION' }, '');
  t.equal(plain.exitCode, 0);
  t.strictSame(plain.json, { cniVersion: '1.1.0', supportedVersions: ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  const asked = await invoke(trestleHostLocal, { command: 'VERSION' }, { cniVersion: '0.3.1' });
  t.equal(asked.json?.['cniVersion'], '0.3.1', 'answers in the version of the configuration on stdin');
});

t.test('code 1: incompatible versions', async (t) => {
  const dataDir = tempDir(t);
  expectError(t, await invoke(trestleHostLocal, addCall(), network(dataDir, { cniVersion: '9.9.9' })), 1, /9\.9\.9/);
  expectError(t, await invoke(trestleHostLocal, addCall(), network(dataDir, { cniVersion: 'one' })), 1, /one/);
  const check = await invoke(trestleHostLocal, addCall({ command: 'CHECK' }), network(dataDir, { cniVersion: '0.3.1' }));
  expectError(t, check, 1, /CHECK/, '0.3.1');
  for (const command of ['STATUS', 'GC']) {
    const outcome = await invoke(trestleHostLocal, { command, cniPath: '/usr/lib/cni' }, network(dataDir, { cniVersion: '1.0.0', extra: { 'cni.dev/valid-attachments': [] } }));
    expectError(t, outcome, 1, new RegExp(command), '1.0.0');
  }
});

t.test('code 4: the environment', async (t) => {
  const conf = network(tempDir(t));
  for (const variable of ['containerId', 'netns', 'ifname'] as const) {
    const call = addCall();
    delete call[variable];
    const name = { containerId: 'CNI_CONTAINERID', netns: 'CNI_NETNS', ifname: 'CNI_IFNAME' }[variable];
    expectError(t, await invoke(trestleHostLocal, call, conf), 4, new RegExp(name), '1.1.0');
  }
  for (const ifname of ['eth0/..', 'a b', 'abcdefghijklmnop', '.', '..']) {
    expectError(t, await invoke(trestleHostLocal, addCall({ ifname }), conf), 4, /interface name/);
  }
  for (const containerId of ['../x', '../../etc', 'a/b', '.']) {
    expectError(t, await invoke(trestleHostLocal, addCall({ containerId }), conf), 4, /container ID/);
  }
  expectError(t, await invoke(trestleHostLocal, addCall({ cniArgs: 'FOO=bar' }), conf), 4, /FOO/);
  expectError(t, await invoke(trestleHostLocal, addCall({ cniArgs: 'novalue' }), conf), 4, /CNI_ARGS/);
  expectError(t, await invoke(trestleHostLocal, addCall({ command: 'NOPE' }), conf), 4, /NOPE/);
  expectError(t, await invoke(trestleHostLocal, { command: '' }, conf), 4, /CNI_COMMAND/);
  const ignored = await invoke(trestleHostLocal, addCall({ cniArgs: 'FOO=bar;IgnoreUnknown=1;K8S_POD_NAME=p' }), conf);
  t.equal(ignored.exitCode, 0, 'unknown keys pass with IgnoreUnknown=1');
});

t.test('code 6: undecodable configuration', async (t) => {
  expectError(t, await invoke(trestleHostLocal, addCall(), '{"cniVersion": "1.0.0", "name": '), 6, /decode/);
  expectError(t, await invoke(trestleHostLocal, addCall(), ''), 6, /decode/);
  expectError(t, await invoke(trestleHostLocal, addCall(), '[1,2]'), 6, /object/);
  const prevResult = { ips: [{ gateway: '10.0.0.1' }] };
  expectError(t, await invoke(trestleHostLocal, addCall(), network(tempDir(t), { extra: { prevResult } })), 6, /prevResult/);
});

t.test('code 7: invalid configuration', async (t) => {
  const dataDir = tempDir(t);
  const cases: Array<[string, Json, RegExp]> = [
    ['no ranges', network(dataDir, { ipam: {} }), /no address ranges/],
    ['empty ranges', network(dataDir, { ipam: { ranges: [] } }), /no address ranges/],
    ['an empty range set', network(dataDir, { ipam: { ranges: [[]] } }), /non-empty/],
    ['host bits', network(dataDir, { ipam: { ranges: [[{ subnet: '10.0.0.5/24' }]] } }), /host bits/],
    ['gateway outside', network(dataDir, { ipam: { ranges: [[{ subnet: '10.0.0.0/24', gateway: '10.0.1.1' }]] } }), /gateway/],
    ['not a subnet', network(dataDir, { ipam: { subnet: '10.0.0.0' } }), /subnet/],
    ['relative dataDir', network('relative/dir'), /dataDir/],
    ['no name', { cniVersion: '1.0.0', type: 'bridge', ipam: { type: 'host-local', dataDir } }, /name/],
    ['no ipam', { cniVersion: '1.0.0', name: 'n', type: 'bridge' }, /ipam/],
    ['bad requested IP', network(dataDir, { extra: { args: { cni: { ips: ['10.0.0.300'] } } } }), /args\.cni\.ips/],
  ];
  for (const [what, conf, message] of cases) {
    t.test(what, async (t) => expectError(t, await invoke(trestleHostLocal, addCall(), conf), 7, message));
  }
});

t.test('an unwritable dataDir fails ADD with a CNI error, not a crash', async (t) => {
  const dataDir = tempDir(t);
  writeFileSync(join(dataDir, 'file'), '');
  const outcome = await invoke(trestleHostLocal, addCall(), network(join(dataDir, 'file', 'sub')));
  t.not(outcome.exitCode, 0);
  t.type(outcome.json?.['code'], 'number');
  t.notMatch(outcome.stdout, /\n\s+at /, 'no stack trace on stdout');
});
