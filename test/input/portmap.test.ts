// trestle-portmap and trestle-bridge against values that would reach outside their
// place: a previous result's host interface as a sysctl path, state directories in
// the kernel's virtual file systems, thousands of UDP mappings, delegated plugins
// that fail without a CNI error. On the real kernel, in a sandbox.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import t, { type Test } from 'tap';
import { referenceBin, trestleBin, Sandbox } from '../../src/sandbox/sandbox.js';
import { bridgeEntry, describe, pluginConfig, reservations, toOutcome, veths, type Call, type Json, type Outcome } from '../helpers/bridge.js';
import { natPlugins } from '../helpers/nat.js';

// One plugin process in the node namespace, bounded in time (a hang is a failure,
// not a stuck suite), with an optional directory put first on PATH.
async function run(sandbox: Sandbox, type: string, request: Call, config: Json, options: { pathFirst?: string } = {}): Promise<Outcome & { ms: number }> {
  const path = process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin';
  const env: Record<string, string> = {
    PATH: options.pathFirst ? `${options.pathFirst}:${path}` : path,
    CNI_COMMAND: request.command,
    CNI_PATH: `${trestleBin}:${referenceBin}`,
    ...sandbox.pluginEnvironment(),
  };
  if (request.containerId !== undefined) env['CNI_CONTAINERID'] = request.containerId;
  if (request.netns !== undefined) env['CNI_NETNS'] = request.netns;
  if (request.ifname !== undefined) env['CNI_IFNAME'] = request.ifname;
  const started = Date.now();
  const outcome = await execa('nsenter', [`--net=${sandbox.nodePath}`, join(trestleBin, type)], { input: JSON.stringify(config), env, extendEnv: false, reject: false, timeout: 10_000 });
  return { ...toOutcome(outcome), ms: Date.now() - started };
}

function noStackTrace(t: Test, outcome: Outcome): void {
  t.notMatch(`${outcome.stdout}\n${outcome.stderr}`, /\n\s+at .*\(?.*:\d+:\d+\)?/, 'no stack trace');
}

async function nodeSysctl(sandbox: Sandbox, name: string): Promise<string> {
  return String((await sandbox.inNode('cat', [`/proc/sys/net/ipv4/conf/${name}/route_localnet`])).stdout).trim();
}

t.test("a previous result's host interface never becomes a path outside its link's sysctls", async (t) => {
  const sandbox = await Sandbox.create(t);
  const container = await sandbox.addContainer();
  const list = sandbox.conflist(natPlugins(sandbox));
  const portmap = { ...(list.plugins[1] as Json), cniVersion: '1.1.0', name: list.name, runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] } };
  // A directory the traversal would reach, so that the write could succeed.
  const target = join(sandbox.dir, 'x');
  mkdirSync(target);
  const before = await nodeSysctl(sandbox, 'all');
  for (const name of ['all', 'default', `../../../../../..${target}`]) {
    const prevResult = { cniVersion: '1.1.0', interfaces: [{ name }, { name: 'eth0', sandbox: container.path }], ips: [{ address: '10.77.0.9/16', interface: 1 }] };
    const outcome = await run(sandbox, 'trestle-portmap', { command: 'ADD', containerId: container.id, netns: container.path, ifname: 'eth0' }, { ...portmap, prevResult });
    t.equal(outcome.json?.['code'], 7, `${JSON.stringify(name)} is refused as configuration: ${describe(outcome)}`);
    t.match(String(outcome.json?.['msg']), /prevResult\.interfaces\[0\]\.name/, 'the message names the value');
    noStackTrace(t, outcome);
  }
  t.equal(await nodeSysctl(sandbox, 'all'), before, "the node's conf/all/route_localnet is unchanged");
  t.equal(await nodeSysctl(sandbox, 'default'), '0', 'so is conf/default');
  t.strictSame(readdirSync(target), [], 'nothing was written through the traversal');

  // The valid case still works: the bridge's own route_localnet is turned on.
  const runner = sandbox.runner();
  runner.add(list, sandbox.attachment(container, { capabilities: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] } }));
  t.equal(await nodeSysctl(sandbox, 'trestle0'), '1', "the bridge's route_localnet is on");
  t.equal(await nodeSysctl(sandbox, 'all'), before, 'conf/all still unchanged');
});

t.test('dataDir and stateDir under /proc, /sys or /dev are refused at once', async (t) => {
  const sandbox = await Sandbox.create(t);
  const container = await sandbox.addContainer();
  const request: Call = { command: 'ADD', containerId: container.id, netns: container.path, ifname: 'eth0' };
  const cases: Array<[string, Json]> = [
    ['ipam.dataDir /proc/trestle', bridgeEntry(sandbox, { ipam: { dataDir: '/proc/trestle' } })],
    ['ipam.dataDir /proc/self/cwd/x', bridgeEntry(sandbox, { ipam: { dataDir: '/proc/self/cwd/x' } })],
    ['stateDir /proc/self/x', bridgeEntry(sandbox, { bridge: { stateDir: '/proc/self/x', ipMasq: true } })],
    ['stateDir /sys/x', bridgeEntry(sandbox, { bridge: { stateDir: '/sys/x', ipMasq: true } })],
    ['ipam.dataDir relative', bridgeEntry(sandbox, { ipam: { dataDir: 'var/lib/cni' } })],
  ];
  for (const [what, entry] of cases) {
    const outcome = await run(sandbox, 'trestle-bridge', request, pluginConfig(sandbox, entry));
    t.equal(outcome.json?.['code'], 7, `bridge, ${what}: ${describe(outcome)}`);
    t.ok(outcome.ms < 5000, `answered in ${outcome.ms} ms`);
  }
  const prevResult = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: container.path }], ips: [{ address: '10.77.0.9/16', interface: 0 }] };
  for (const stateDir of ['/proc/trestle', '/dev/trestle']) {
    const config = { cniVersion: '1.0.0', name: `net-${sandbox.id}`, type: 'trestle-portmap', stateDir, runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80 }] }, prevResult };
    for (const command of ['ADD', 'DEL'] as const) {
      const outcome = await run(sandbox, 'trestle-portmap', { ...request, command }, config);
      t.equal(outcome.json?.['code'], 7, `portmap ${command}, stateDir ${stateDir}: ${describe(outcome)}`);
      t.ok(outcome.ms < 5000, `answered in ${outcome.ms} ms`);
    }
  }
  t.strictSame(await veths(sandbox), [], 'no veth was left');
  t.strictSame(reservations(sandbox), [], 'no address was reserved');
});

t.test('thousands of UDP mappings start no conntrack process: the table is read through ctnetlink', async (t) => {
  const sandbox = await Sandbox.create(t);
  const container = await sandbox.addContainer();
  // A conntrack that logs its calls before doing the real work, first in PATH.
  const wrapper = join(sandbox.dir, 'wrapper');
  const log = join(sandbox.dir, 'conntrack.log');
  mkdirSync(wrapper);
  writeFileSync(log, '');
  const real = ['/usr/sbin/conntrack', '/sbin/conntrack', '/usr/bin/conntrack'].find((file) => existsSync(file)) ?? 'conntrack';
  writeFileSync(join(wrapper, 'conntrack'), `#!/bin/sh\necho "$*" >> '${log}'\nexec ${real} "$@"\n`);
  chmodSync(join(wrapper, 'conntrack'), 0o755);
  const calls = () => readFileSync(log, 'utf8').split('\n').filter((line) => line !== '');

  const attachment = { containerId: container.id, netns: container.path, ifname: 'eth0' };
  const list = sandbox.conflist(natPlugins(sandbox));
  const bridge = { ...(list.plugins[0] as Json), cniVersion: '1.0.0', name: list.name };
  const added = await run(sandbox, 'trestle-bridge', { command: 'ADD', ...attachment }, bridge);
  t.equal(added.exitCode, 0, describe(added));
  const portMappings = Array.from({ length: 2000 }, (_, i) => ({ hostPort: 20000 + i, containerPort: 53, protocol: 'udp' }));
  const portmap = { ...(list.plugins[1] as Json), cniVersion: '1.0.0', name: list.name, runtimeConfig: { portMappings }, prevResult: added.json };
  const mapped = await run(sandbox, 'trestle-portmap', { command: 'ADD', ...attachment }, portmap, { pathFirst: wrapper });
  t.equal(mapped.exitCode, 0, `ADD of 2000 UDP mappings: ${describe(mapped)}`);
  t.equal(calls().length, 0, `ADD ran conntrack ${calls().length} time(s): ${calls().slice(0, 3).join(' | ')}`);
  writeFileSync(log, '');
  const removed = await run(sandbox, 'trestle-portmap', { command: 'DEL', ...attachment }, portmap, { pathFirst: wrapper });
  t.equal(removed.exitCode, 0, `DEL: ${describe(removed)}`);
  t.equal(calls().length, 0, `DEL ran conntrack ${calls().length} time(s)`);
  const gone = await run(sandbox, 'trestle-bridge', { command: 'DEL', ...attachment }, bridge);
  t.equal(gone.exitCode, 0, describe(gone));
});

t.test('a delegated IPAM plugin that fails without a CNI error or prints nothing', async (t) => {
  const sandbox = await Sandbox.create(t);
  const container = await sandbox.addContainer();
  const request: Call = { command: 'ADD', containerId: container.id, netns: container.path, ifname: 'eth0' };
  // `false` and `true` from the system, found through CNI_PATH as any plugin is.
  const bin = join(sandbox.dir, 'bin');
  mkdirSync(bin);
  for (const program of ['false', 'true']) {
    const file = ['/usr/bin', '/bin'].map((dir) => join(dir, program)).find((candidate) => existsSync(candidate)) as string;
    writeFileSync(join(bin, program), `#!/bin/sh\nexec ${file} "$@"\n`);
    chmodSync(join(bin, program), 0o755);
  }
  const cases: Array<[string, number]> = [
    ['false', 103],
    ['true', 6],
  ];
  for (const [type, code] of cases) {
    for (let attempt = 0; attempt < 5; attempt++) {
      const entry = { ...bridgeEntry(sandbox), ipam: { type } };
      const outcome = await runWithCniPath(sandbox, request, pluginConfig(sandbox, entry), bin);
      t.equal(outcome.json?.['code'], code, `ipam.type ${type}, attempt ${attempt + 1}: ${describe(outcome)}`);
      if (type === 'false') t.match(String(outcome.json?.['msg']), /"false".*exit status 1/, 'names the plugin and its exit status');
      noStackTrace(t, outcome);
    }
  }
  t.strictSame(await veths(sandbox), [], 'no veth was left');
});

async function runWithCniPath(sandbox: Sandbox, request: Call, config: Json, dir: string): Promise<Outcome> {
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: request.command,
    CNI_PATH: `${dir}:${trestleBin}`,
    CNI_CONTAINERID: request.containerId as string,
    CNI_NETNS: request.netns as string,
    CNI_IFNAME: request.ifname as string,
    ...sandbox.pluginEnvironment(),
  };
  const outcome = await execa('nsenter', [`--net=${sandbox.nodePath}`, join(trestleBin, 'trestle-bridge')], { input: JSON.stringify(config), env, extendEnv: false, reject: false, timeout: 10_000 });
  return toOutcome(outcome);
}
