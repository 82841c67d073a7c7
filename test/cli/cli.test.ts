// The operator's CLI against a real node namespace: `ls` reads what the plugins
// reserved and mapped, `doctor` finds each problem it names when the test creates it.
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { repoRoot, residentMode, Sandbox, trestleBin } from '../../src/sandbox/sandbox.js';
import { natPlugins } from '../helpers/nat.js';

interface Finding {
  check: string;
  verdict: 'ok' | 'warn' | 'fail';
  detail: string;
}

// With the sandbox's daemon socket, so that no daemon of the machine's is asked.
async function trestle(sandbox: Sandbox, args: string[]) {
  const outcome = await sandbox.exec(sandbox.node, join(trestleBin, 'trestle'), args, { reject: false, env: sandbox.pluginEnvironment() });
  return { exitCode: outcome.exitCode ?? -1, stdout: String(outcome.stdout), stderr: String(outcome.stderr) };
}

function findings(stdout: string): Finding[] {
  return JSON.parse(stdout) as Finding[];
}

t.test('ls lists the addresses in use and the ports each container holds', async (t) => {
  const sandbox = await Sandbox.create(t);
  const list = sandbox.conflist(natPlugins(sandbox));
  const runner = sandbox.runner();
  const first = await sandbox.addContainer();
  const second = await sandbox.addContainer();
  const firstAttachment = sandbox.attachment(first, { capabilities: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] } });
  const firstResult = runner.add(list, firstAttachment);
  runner.add(list, sandbox.attachment(second));
  const stores = ['--data-dir', sandbox.dataDir, '--state-dir', sandbox.stateDir];

  const table = await trestle(sandbox, ['ls', ...stores]);
  t.equal(table.exitCode, 0, 'ls succeeds');
  t.match(table.stdout, /NETWORK\s+IP\s+CONTAINER\s+IFNAME\s+POD\s+PORTS/, 'a table with headings');
  t.match(table.stdout, new RegExp(`${list.name}\\s+10\\.77\\.0\\.2\\s+${first.id}\\s+eth0\\s+8080->80/tcp`), 'the first container, with its port');
  t.match(table.stdout, new RegExp(`10\\.77\\.0\\.3\\s+${second.id}\\s+eth0\\s*$`, 'm'), 'the second container, without ports');

  const json = JSON.parse((await trestle(sandbox, ['ls', list.name, '--json', ...stores])).stdout) as Array<Record<string, unknown>>;
  t.same(
    json.map((row) => [row['ip'], row['containerId'], row['ports']]),
    [
      ['10.77.0.2', first.id, ['8080->80/tcp']],
      ['10.77.0.3', second.id, []],
    ],
    '--json gives the same rows',
  );
  t.match((await trestle(sandbox, ['ls', 'no-such-network', ...stores])).stdout, /no address in use on network no-such-network/, 'an unknown network has nothing in use');
  const bad = await trestle(sandbox, ['ls', '../etc', ...stores]);
  t.equal(bad.exitCode, 2, 'a network name that is a path is a usage error');
  t.match(bad.stderr, /not a network name/);

  runner.del(list, firstAttachment, firstResult);
  const after = JSON.parse((await trestle(sandbox, ['ls', '--json', ...stores])).stdout) as Array<Record<string, unknown>>;
  t.same(after.map((row) => row['containerId']), [second.id], 'DEL takes the first container off the list');
});

t.test('doctor names each problem of a node and exits 1 on a failure', async (t) => {
  const sandbox = await Sandbox.create(t);
  const confDir = join(sandbox.dir, 'net.d');
  mkdirSync(confDir);
  const list = sandbox.conflist(natPlugins(sandbox));
  writeFileSync(join(confDir, '10-test.conflist'), JSON.stringify(list));
  const doctor = async () => {
    const outcome = await trestle(sandbox, ['doctor', '--json', '--conf-dir', confDir]);
    return { exitCode: outcome.exitCode, findings: findings(outcome.stdout) };
  };
  const verdictOf = (all: Finding[], check: RegExp) => all.find((finding) => check.test(finding.check));

  // A new namespace may inherit forwarding from the machine's; this node starts without.
  await sandbox.inNode('tee', ['/proc/sys/net/ipv4/ip_forward'], { input: '0\n' });
  const healthy = await doctor();
  t.equal(healthy.exitCode, 0, `a fresh node passes: ${JSON.stringify(healthy.findings)}`);
  t.equal(verdictOf(healthy.findings, /^nftables$/)?.verdict, 'ok', 'nft is found');
  t.equal(verdictOf(healthy.findings, /IPv4 forwarding/)?.verdict, 'warn', 'forwarding is off in a new namespace');
  t.equal(verdictOf(healthy.findings, /subnet 10\.77\.0\.0\/16/)?.verdict, 'ok', 'the subnet overlaps nothing');
  t.equal(verdictOf(healthy.findings, /allocations/)?.verdict, 'ok', 'no stale allocation');

  const runner = sandbox.runner();
  const container = await sandbox.addContainer();
  runner.add(list, sandbox.attachment(container));
  t.equal(verdictOf((await doctor()).findings, /IPv4 forwarding/)?.verdict, 'ok', 'the gateway ADD turned forwarding on');

  // A reservation whose container has no veth: what a runtime that never called DEL leaves.
  writeFileSync(join(sandbox.dataDir, list.name, '10.77.0.99'), 'ctr-vanished\r\neth0');
  const stale = verdictOf((await doctor()).findings, /allocations/);
  t.equal(stale?.verdict, 'warn', 'a reservation without a veth is stale');
  t.match(stale?.detail ?? '', /1 of 2 .*10\.77\.0\.99 \(ctr-vanished\)/, 'and named');

  // An empty record: a writer killed between creating and filling it. No DEL can
  // claim it; doctor must say what does remove it.
  writeFileSync(join(sandbox.dataDir, list.name, '10.77.0.98'), '');
  const debris = (await doctor()).findings.filter((finding) => /allocations/.test(finding.check)).map((finding) => finding.detail).join(' ');
  t.match(debris, /1 records no container owns .*10\.77\.0\.98.*GC .* removes them once they are 60 s old/, 'an empty record is reported with what removes it');
  rmSync(join(sandbox.dataDir, list.name, '10.77.0.98'));

  await sandbox.inNode('ip', ['link', 'add', 'lan9', 'type', 'veth', 'peer', 'name', 'lan9p']);
  await sandbox.inNode('ip', ['link', 'set', 'lan9', 'up']);
  await sandbox.inNode('ip', ['route', 'add', '10.0.0.0/8', 'dev', 'lan9']);
  const overlap = await doctor();
  t.equal(overlap.exitCode, 1, 'an overlapping route is a failure');
  t.match(verdictOf(overlap.findings, /subnet 10\.77\.0\.0\/16/)?.detail ?? '', /10\.0\.0\.0\/8 dev lan9/, 'naming the route');
  await sandbox.inNode('ip', ['link', 'del', 'lan9']);

  await sandbox.inNode('nft', ['-f', '-'], { input: 'table inet dockerlike {\n chain forward {\n type filter hook forward priority 0; policy drop;\n }\n}\n' });
  const dropping = await doctor();
  t.equal(dropping.exitCode, 1, 'a forward chain that drops by default is a failure');
  t.match(verdictOf(dropping.findings, /forward policy/)?.detail ?? '', /inet dockerlike forward/, 'naming the chain');

  writeFileSync(join(confDir, '20-broken.conflist'), '{ not json');
  t.match(verdictOf((await doctor()).findings, /configuration/)?.detail ?? '', /20-broken\.conflist/, 'an unreadable configuration is named');

  const table = await trestle(sandbox, ['doctor', '--conf-dir', confDir]);
  t.match(table.stdout, /^FAIL\s+forward policy/m, 'the table shows verdicts for people');
});

t.test('doctor says whether a daemon answers and whether it runs the installed build', async (t) => {
  const sandbox = await Sandbox.create(t);
  const confDir = join(sandbox.dir, 'net.d');
  mkdirSync(confDir);
  const daemonFinding = async (socket: string, program: string[] = [join(trestleBin, 'trestle')]) => {
    const [file = '', ...args] = program;
    const outcome = await sandbox.exec(sandbox.node, file, [...args, 'doctor', '--json', '--conf-dir', confDir], { reject: false, env: { TRESTLE_SOCKET: socket } });
    return { exitCode: outcome.exitCode, finding: findings(String(outcome.stdout)).find((finding) => finding.check === 'daemon') };
  };

  const none = await daemonFinding(join(sandbox.dir, 'none.sock'));
  t.equal(none.finding?.verdict, 'ok', 'no daemon is fine');
  t.match(none.finding?.detail, /no daemon answers on .*none\.sock .*: calls run one-shot/, 'and says calls run one-shot');

  if (!residentMode()) await sandbox.startDaemon();
  const build = readFileSync(join(repoRoot, 'dist/trestle.build'), 'utf8').trim();
  const same = await daemonFinding(sandbox.socketPath);
  t.equal(same.finding?.verdict, 'ok', `a daemon of the installed build is fine: ${same.finding?.detail}`);
  t.match(same.finding?.detail, new RegExp(`pid \\d+ on ${sandbox.socketPath}, build ${build}, .*the same as the installed client`), 'naming its pid and build');

  // A new build installed while the old daemon runs: the CLI's bundle with another
  // trestle.build beside it.
  const upgraded = join(sandbox.dir, 'upgraded');
  mkdirSync(upgraded);
  for (const file of ['trestle.cjs', 'koffi.node']) copyFileSync(join(repoRoot, 'dist', file), join(upgraded, file));
  writeFileSync(join(upgraded, 'trestle.build'), '0123456789abcdef\n');
  const mismatch = await daemonFinding(sandbox.socketPath, [process.execPath, join(upgraded, 'trestle.cjs')]);
  t.equal(mismatch.exitCode, 0, 'a build mismatch is no failure');
  t.equal(mismatch.finding?.verdict, 'warn', 'but a warning');
  t.match(mismatch.finding?.detail, new RegExp(`build ${build}, .*; the installed client is build 0123456789abcdef: calls run one-shot until the daemon restarts onto the new build`));

  // A process that accepts on the socket and never answers (a stopped daemon): every
  // call would fail with 11.
  const silentPath = join(sandbox.dir, 'silent.sock');
  const held: Socket[] = [];
  const silent = createServer((socket) => held.push(socket));
  await new Promise<void>((resolve) => silent.listen(silentPath, resolve));
  t.teardown(() => {
    for (const socket of held) socket.destroy();
    silent.close();
  });
  const stuck = await daemonFinding(silentPath);
  t.equal(stuck.exitCode, 1, 'a socket that accepts and never answers is a failure');
  t.match(stuck.finding?.detail, /accepts calls but gives no answer .*code 11/);
});

t.test('version, usage and bad commands', async (t) => {
  const sandbox = await Sandbox.create(t);
  const version = JSON.parse((await trestle(sandbox, ['version', '--json'])).stdout) as Record<string, unknown>;
  t.match(version, { trestle: /^\d+\.\d+\.\d+$/, cniVersions: ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  t.match((await trestle(sandbox, ['version'])).stdout, /^trestle \d+\.\d+\.\d+ \(CNI 0\.1\.0, .*1\.1\.0; Node\.js v\d+/);
  const unknown = await trestle(sandbox, ['frobnicate']);
  t.equal(unknown.exitCode, 2, 'an unknown command exits 2');
  t.match(unknown.stderr, /unknown command "frobnicate"[\s\S]*usage: trestle/);
  const badOption = await trestle(sandbox, ['ls', '--nope']);
  t.equal(badOption.exitCode, 2, 'an unknown option exits 2');
  t.equal((await trestle(sandbox, ['--help'])).exitCode, 0, '--help exits 0');
});
