// `trestle install-cni`, as a DaemonSet's init container runs it, into temporary
// directories (no kernel, no cluster): the conflist for a node's pod CIDRs, validation
// of those CIDRs, a first and a second run (nothing rewritten), a run over a plugin
// that is executing, and the lookup of the node's pod CIDRs from an API server.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import t, { type Test } from 'tap';
import { parseNetConf } from '../../src/cni/config.js';
import { conflistName, defaultCniBinDir, defaultCniConfDir, installCni, nodePodCidrs, parsePodCidrs, trestleConflist } from '../../src/cli/install-cni.js';
import { parseHostLocalConfig } from '../../src/ipam/host-local-config.js';
import { parsePortmapConfig } from '../../src/plugins/portmap/config.js';
import { trestleBin } from '../../src/sandbox/sandbox.js';
import { findProgram } from '../helpers/programs.js';

type Json = Record<string, any>;
const plugins = ['trestle-bridge', 'trestle-host-local', 'trestle-portmap'];

function temporaryDir(t: Test, label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `trestle-${label}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// What the image holds beside its trestle: stand-ins with distinct contents, the
// client an executable that can be left running (sleep).
function fakeSource(dir: string): string {
  const source = join(dir, 'source');
  mkdirSync(source);
  writeFileSync(join(source, 'trestle'), '#!/bin/sh\necho single executable\n', { mode: 0o755 });
  copyFileSync(findProgram('sleep') ?? '/bin/sleep', join(source, 'trestle-client'));
  chmodSync(join(source, 'trestle-client'), 0o755);
  writeFileSync(join(source, 'trestle.build'), '0123456789abcdef\n');
  return source;
}

function modeOf(path: string): number {
  return lstatSync(path).mode & 0o7777;
}

t.test('the conflist has one range set per pod CIDR, and every plugin accepts its part', async (t) => {
  for (const cidrs of [['10.244.1.0/24'], ['fd00:10:244:1::/64'], ['10.244.1.0/24', 'fd00:10:244:1::/64']]) {
    const list = trestleConflist(cidrs) as Json;
    t.same(list['cniVersion'], '1.0.0', 'cniVersion 1.0.0: what containerd 1.6/1.7 parse');
    t.same(list['cniVersions'], ['0.3.1', '0.4.0', '1.0.0', '1.1.0']);
    t.same(list['plugins'].map((plugin: Json) => plugin['type']), ['trestle-bridge', 'trestle-portmap']);
    const [bridge, portmap] = list['plugins'] as [Json, Json];
    t.same(bridge['ipam']['ranges'], cidrs.map((subnet) => [{ subnet }]), `ranges for ${cidrs.join(',')}`);
    t.ok(bridge['isDefaultGateway'] && bridge['ipMasq'] && bridge['hairpinMode'], 'default route, masquerade and hairpin (Service traffic back to its own pod)');
    t.same(portmap['capabilities'], { portMappings: true }, 'hostPort mappings come from the runtime');
    // Each plugin sees its entry with the list's name and version, as libcni hands it.
    const entry = (plugin: Json) => parseNetConf(Buffer.from(JSON.stringify({ ...plugin, name: list['name'], cniVersion: list['cniVersion'] })));
    const hostLocal = parseHostLocalConfig(entry(bridge), new Map());
    t.same(hostLocal.rangeSets.map((set) => set.length), cidrs.map(() => 1), 'host-local reads one range per set');
    t.doesNotThrow(() => parsePortmapConfig(entry(portmap), { mappings: false }), 'portmap accepts its entry');
  }
});

t.test('pod CIDRs: canonical form, at most one per family, only networks a range may take', async (t) => {
  t.same(parsePodCidrs('10.244.1.0/24', 'POD_CIDR'), ['10.244.1.0/24']);
  t.same(parsePodCidrs(' 10.244.1.0/24 , FD00:10:244:1:0::/64', 'POD_CIDR'), ['10.244.1.0/24', 'fd00:10:244:1::/64'], 'spaces trimmed, IPv6 canonical');
  t.same(parsePodCidrs('fd00::/64,10.0.0.0/16', '--pod-cidr'), ['fd00::/64', '10.0.0.0/16'], 'IPv6 first stays first');
  const bad: Array<[string, RegExp]> = [
    ['', /"" is not a CIDR/],
    ['10.244.1.0', /is not a CIDR/],
    ['10.244.1.0/24,', /"" is not a CIDR/],
    ['banana', /"banana" is not a CIDR/],
    ['10.244.1.7/24', /host bits set; the network address is 10\.244\.1\.0\/24/],
    ['10.244.1.0/31', /too small/],
    ['127.0.0.0/8', /loopback/],
    ['0.0.0.0/0', /unspecified/],
    ['10.1.0.0/24,10.2.0.0/24', /more than one IPv4 CIDR/],
    ['fd00:1::/64,fd00:2::/64', /more than one IPv6 CIDR/],
  ];
  for (const [text, message] of bad) {
    t.throws(() => parsePodCidrs(text, '--pod-cidr'), { message }, `refused: ${JSON.stringify(text)}`);
    t.throws(() => parsePodCidrs(text, '--pod-cidr'), { message: /^--pod-cidr/ }, 'the message names where the value came from');
  }
});

t.test('a run into empty directories, then a second run that changes nothing', async (t) => {
  const dir = temporaryDir(t, 'install-cni');
  const source = fakeSource(dir);
  const binDir = join(dir, 'host/opt/cni/bin');
  const confDir = join(dir, 'host/etc/cni/net.d');
  const options = { source, cniBinDir: binDir, cniConfDir: confDir, podCidrs: ['10.244.1.0/24', 'fd00:10:244:1::/64'] };

  const first = installCni(options);
  t.equal(first.written.length, 7, 'seven files written');
  t.same(first.unchanged, []);
  for (const plugin of plugins) {
    t.same(readFileSync(join(binDir, plugin)), readFileSync(join(source, 'trestle-client')), `${plugin} is the native client`);
    t.equal(modeOf(join(binDir, plugin)), 0o755);
  }
  t.same(readFileSync(join(binDir, 'trestle')), readFileSync(join(source, 'trestle')), 'trestle is the single executable');
  t.equal(modeOf(join(binDir, 'trestle')), 0o755);
  t.equal(readlinkSync(join(binDir, 'trestle-node')), 'trestle', 'trestle-node links to it (the one-shot fallback)');
  t.equal(readFileSync(join(binDir, 'trestle.build'), 'utf8'), '0123456789abcdef\n', 'the build id beside it');
  const conflist = JSON.parse(readFileSync(join(confDir, conflistName), 'utf8')) as Json;
  t.same(conflist, trestleConflist(options.podCidrs), 'the conflist for the node');
  t.equal(modeOf(join(confDir, conflistName)), 0o644);

  const inodes = [...plugins, 'trestle', 'trestle.build'].map((name) => statSync(join(binDir, name)).ino);
  const second = installCni(options);
  t.same(second.written, [], 'the second run writes nothing');
  t.equal(second.unchanged.length, 7);
  t.same([...plugins, 'trestle', 'trestle.build'].map((name) => statSync(join(binDir, name)).ino), inodes, 'no file replaced');

  // Another pod CIDR (the node was re-created): only the conflist changes.
  const third = installCni({ ...options, podCidrs: ['10.244.2.0/24'] });
  t.same(third.written, [join(confDir, conflistName)], 'only the conflist is rewritten');
  t.same(JSON.parse(readFileSync(join(confDir, conflistName), 'utf8'))['plugins'][0]['ipam']['ranges'], [[{ subnet: '10.244.2.0/24' }]]);

  // A changed mode, a trestle-node that is a file (a script-form make install): repaired.
  chmodSync(join(binDir, 'trestle-portmap'), 0o700);
  rmSync(join(binDir, 'trestle-node'));
  writeFileSync(join(binDir, 'trestle-node'), '#!/bin/sh\n');
  const fourth = installCni({ ...options, podCidrs: ['10.244.2.0/24'] });
  t.same(fourth.written.sort(), [join(binDir, 'trestle-node'), join(binDir, 'trestle-portmap')], 'exactly the two that differ');
  t.equal(modeOf(join(binDir, 'trestle-portmap')), 0o755);
  t.equal(readlinkSync(join(binDir, 'trestle-node')), 'trestle');
  t.equal(execFileSync('find', [dir, '-name', '*.tmp'], { encoding: 'utf8' }), '', 'no temporary file left');
});

t.test('a run over a plugin that is executing succeeds (no "Text file busy")', async (t) => {
  const dir = temporaryDir(t, 'install-cni-busy');
  const source = fakeSource(dir);
  const binDir = join(dir, 'bin');
  const confDir = join(dir, 'net.d');
  installCni({ source, cniBinDir: binDir, cniConfDir: confDir, podCidrs: ['10.244.1.0/24'] });
  const running = spawn(join(binDir, 'trestle-bridge'), ['30'], { stdio: 'ignore' });
  t.teardown(() => {
    if (running.exitCode === null) running.kill('SIGKILL');
  });
  await new Promise((resolve) => running.once('spawn', resolve));
  // A newer client in the image (sleep's bytes and one more).
  writeFileSync(join(source, 'trestle-client'), Buffer.concat([readFileSync(join(source, 'trestle-client')), Buffer.from('\n')]), { mode: 0o755 });
  t.throws(() => writeFileSync(join(binDir, 'trestle-bridge'), 'x'), { code: 'ETXTBSY' }, 'writing over it in place would fail');
  const outcome = installCni({ source, cniBinDir: binDir, cniConfDir: confDir, podCidrs: ['10.244.1.0/24'] });
  t.same(outcome.written, plugins.map((plugin) => join(binDir, plugin)), 'the three plugins replaced');
  t.same(readFileSync(join(binDir, 'trestle-bridge')), readFileSync(join(source, 'trestle-client')), 'with the new client');
  t.equal(running.exitCode, null, 'the running plugin goes on with its old file');
  running.kill('SIGKILL');
});

t.test('the CLI: defaults, exit 0 then "nothing changed", exit 2 on a bad value', async (t) => {
  const dir = temporaryDir(t, 'install-cni-cli');
  const source = fakeSource(dir);
  const trestle = join(trestleBin, 'trestle');
  const args = ['install-cni', '--source', source, '--cni-bin-dir', join(dir, 'bin'), '--cni-conf-dir', join(dir, 'net.d')];
  const run = (extra: string[], env: Record<string, string> = {}) => execa(trestle, [...args, ...extra], { reject: false, env: { POD_CIDR: '', NODE_NAME: '', ...env } });

  const help = await execa(trestle, ['install-cni', '--help'], { reject: false });
  t.equal(help.exitCode, 0);
  t.match(help.stdout, new RegExp(`--cni-bin-dir DIR\\s+\\(default ${defaultCniBinDir}\\)`), 'help names the defaults');
  t.match(help.stdout, new RegExp(`--cni-conf-dir DIR\\s+\\(default ${defaultCniConfDir}\\)`));
  t.match((await execa(trestle, ['--help'])).stdout, /install-cni/, 'trestle --help lists it');

  const first = await run([], { POD_CIDR: '10.244.1.0/24' });
  t.equal(first.exitCode, 0, `first run: ${first.stderr}`);
  t.match(first.stdout, /installed Trestle .* for pod CIDR 10\.244\.1\.0\/24 \(7 written, 0 unchanged\)/);
  const second = await run([], { POD_CIDR: '10.244.1.0/24' });
  t.equal(second.exitCode, 0);
  t.match(second.stdout, /already installed .*: nothing changed/, 'the second run says nothing changed');
  const flag = await run(['--pod-cidr', '10.244.1.0/24,fd00:10:244:1::/64'], { POD_CIDR: '10.9.9.0/24' });
  t.equal(flag.exitCode, 0, 'the flag wins over POD_CIDR');
  t.match(flag.stdout, /pod CIDR 10\.244\.1\.0\/24,fd00:10:244:1::\/64 \(1 written, 6 unchanged\)/);

  const bad = await run(['--pod-cidr', '10.244.1.7/24']);
  t.equal(bad.exitCode, 2, 'a bad pod CIDR: exit 2');
  t.match(bad.stderr, /--pod-cidr: pod CIDR: subnet 10\.244\.1\.7\/24 has host bits set/);
  const none = await run([]);
  t.equal(none.exitCode, 2, 'no pod CIDR at all: exit 2');
  t.match(none.stderr, /no pod CIDR: pass --pod-cidr or set POD_CIDR/);
  const unknown = await run(['--pod-cidr', '10.244.1.0/24', '--bogus']);
  t.equal(unknown.exitCode, 2, 'an unknown option: exit 2');
  const missing = await execa(trestle, ['install-cni', '--source', join(dir, 'nowhere'), '--cni-bin-dir', join(dir, 'bin2'), '--cni-conf-dir', join(dir, 'net2'), '--pod-cidr', '10.244.1.0/24'], { reject: false });
  t.equal(missing.exitCode, 1, 'a source without the executables: exit 1');
  t.match(missing.stderr, /nowhere\/trestle is missing: run install-cni from the Trestle image, or pass --source/);
});

// A certificate for the name the client checks, made by openssl; the server listens on
// a unix socket, so nothing touches any network namespace.
t.test('without a pod CIDR given, the node\'s spec.podCIDRs from the API server', { skip: findProgram('openssl') === undefined && 'openssl is not installed' }, async (t) => {
  const dir = temporaryDir(t, 'install-cni-api');
  const host = 'kubernetes.default.svc';
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', `/CN=${host}`, '-addext', `subjectAltName=DNS:${host}`, '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'ca.crt')], { stdio: 'ignore' });
  writeFileSync(join(dir, 'token'), 'secret-token\n');
  const nodes: Record<string, Json> = {
    'node-a': { spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'] } },
    'node-b': { spec: { podCIDR: '10.244.2.0/24' } },
    'node-c': { spec: {} },
  };
  const seen: string[] = [];
  const server = createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'ca.crt')) }, (request, response) => {
    seen.push(`${request.url} ${request.headers.authorization}`);
    const name = decodeURIComponent(request.url?.replace('/api/v1/nodes/', '') ?? '');
    const node = nodes[name];
    response.writeHead(node ? 200 : 404, { 'content-type': 'application/json' });
    response.end(JSON.stringify(node ?? { kind: 'Status', message: `nodes "${name}" not found` }));
  });
  const socketPath = join(dir, 'api.sock');
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  t.teardown(() => server.close());
  const api = { host, port: 443, socketPath, serviceAccountDir: dir };

  t.equal(await nodePodCidrs('node-a', api), '10.244.1.0/24,fd00:10:244:1::/64', 'both families from spec.podCIDRs');
  t.equal(await nodePodCidrs('node-b', api), '10.244.2.0/24', 'spec.podCIDR alone (older API servers)');
  t.equal(seen[0], '/api/v1/nodes/node-a Bearer secret-token', 'GET the node with the service account token');
  await t.rejects(nodePodCidrs('node-c', api), /node "node-c" has no pod CIDR: allocate node CIDRs .*--pod-network-cidr/);
  await t.rejects(nodePodCidrs('node-z', api), /answered 404 for node "node-z": "nodes \\"node-z\\" not found"/);
  await t.rejects(nodePodCidrs('node-a', { ...api, host: 'other.name' }), /cannot read node "node-a" from the API server: .*other\.name/, 'the certificate must name the server');
});
