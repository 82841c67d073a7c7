// What an operator sees: `trestle daemon status` (and --json) with and without a daemon,
// and the Prometheus text at /metrics after some calls.
import { request } from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import packageJson from '../../package.json' with { type: 'json' };
import { trestleBin, type Sandbox } from '../../src/sandbox/sandbox.js';
import { defaultChain, hostPorts, pluginInput } from '../helpers/faults.js';
import { addChain, bareSandbox, cniEnv, delChain, describeReply, installedBuild, runClient, startDaemon } from '../helpers/daemon.js';

async function daemonStatus(sandbox: Sandbox, json: boolean): Promise<{ exitCode: number; stdout: string }> {
  // (execa drops the final newline.)
  const outcome = await sandbox.exec(sandbox.node, join(trestleBin, 'trestle'), ['daemon', 'status', ...(json ? ['--json'] : [])], {
    reject: false,
    env: { ...sandbox.pluginEnvironment() },
  });
  return { exitCode: outcome.exitCode ?? -1, stdout: String(outcome.stdout) };
}

function get(socket: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const call = request({ socketPath: socket, path, method: 'GET', timeout: 5_000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    call.on('timeout', () => call.destroy(new Error(`no answer to GET ${path}`)));
    call.on('error', reject);
    call.end();
  });
}

// The value of one sample line of Prometheus text, by its exact name and labels.
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((entry) => entry.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

t.test('trestle daemon status without a daemon, then with one', async (t) => {
  const sandbox = await bareSandbox(t);
  const socket = sandbox.socketPath;
  const none = await daemonStatus(sandbox, false);
  t.equal(none.exitCode, 1, 'no daemon: exit 1');
  t.equal(none.stdout, `no daemon answers on ${socket}: no socket (calls run one-shot)`, 'and says calls run one-shot');
  const noneJson = await daemonStatus(sandbox, true);
  t.equal(noneJson.exitCode, 1, '--json: exit 1 too');
  t.same(JSON.parse(noneJson.stdout), { running: false, socket, reason: 'no socket' }, '--json says why');

  const daemon = await startDaemon(t, sandbox);
  const version = await runClient(sandbox, { type: 'trestle-bridge', env: { CNI_COMMAND: 'VERSION', TRESTLE_SOCKET: socket }, input: '{"cniVersion":"1.0.0"}' });
  t.equal(version.exitCode, 0, 'a call through the daemon');
  const text = await daemonStatus(sandbox, false);
  t.equal(text.exitCode, 0, 'a daemon: exit 0');
  t.match(
    text.stdout,
    new RegExp(`^daemon running on ${socket}: pid ${daemon.pid}, up \\d+ s, version ${packageJson.version.replace(/\./g, '\\.')}, build ${installedBuild()}, 1 calls served, 0 in flight$`),
    `one line with pid, uptime, version, build, served and in flight: ${text.stdout.trim()}`,
  );
  const json = await daemonStatus(sandbox, true);
  t.equal(json.exitCode, 0, '--json: exit 0');
  t.match(JSON.parse(json.stdout), { running: true, pid: daemon.pid, uptimeSeconds: Number, version: packageJson.version, build: installedBuild(), served: 1, inFlight: 0, socket }, '--json has the same');

  process.kill(daemon.pid, 'SIGKILL');
  await daemon.exited;
  const stale = await daemonStatus(sandbox, true);
  t.equal(stale.exitCode, 1, 'a stale socket: exit 1');
  t.match(JSON.parse(stale.stdout), { running: false, reason: /stale/ }, 'and says the socket is stale');
});

t.test('/metrics: requests by command and code, latency histograms, addresses in use and free', async (t) => {
  const sandbox = await bareSandbox(t);
  const socket = sandbox.socketPath;
  await startDaemon(t, sandbox);
  const list = defaultChain(sandbox);
  const containers = await Promise.all([1, 2, 3].map(() => sandbox.addContainer()));
  const attachments = containers.map((container, index) => sandbox.attachment(container, { capabilities: { portMappings: hostPorts(8600 + index) } }));
  for (const attachment of attachments) {
    const added = await addChain(sandbox, list, attachment, { socket });
    t.ok(added.result, `ADD succeeds${added.failure ? `: ${describeReply(added.failure.reply)}` : ''}`);
  }
  const bad = await runClient(sandbox, { type: 'trestle-bridge', env: cniEnv('ADD', socket, attachments[0]), input: JSON.stringify({ ...pluginInput(list, list.plugins[0]!, undefined), vlan: 5 }) });
  t.equal(bad.exitCode, 1, 'a refused ADD');
  const deleted = await delChain(sandbox, list, attachments[2]!, { socket });
  t.notOk(deleted.failure, 'a DEL succeeds');

  const metrics = await get(socket, '/metrics');
  t.equal(metrics.status, 200, 'GET /metrics answers 200');
  const body = metrics.body;
  t.equal(sample(body, 'trestle_requests_total{plugin="trestle-bridge",command="ADD",code="0"}'), 3, 'bridge ADDs that succeeded');
  t.equal(sample(body, 'trestle_requests_total{plugin="trestle-portmap",command="ADD",code="0"}'), 3, 'portmap ADDs that succeeded');
  t.equal(sample(body, 'trestle_requests_total{plugin="trestle-bridge",command="ADD",code="2"}'), 1, 'the refused ADD, by its CNI code');
  t.equal(sample(body, 'trestle_requests_total{plugin="trestle-bridge",command="DEL",code="0"}'), 1, 'DELs by command');
  t.match(body, /# TYPE trestle_request_duration_seconds histogram/, 'a latency histogram');
  const buckets = body
    .split('\n')
    .filter((line) => line.startsWith('trestle_request_duration_seconds_bucket{command="ADD"'))
    .map((line) => Number(line.slice(line.lastIndexOf(' ') + 1)));
  t.ok(buckets.length > 2 && buckets.every((count, index) => index === 0 || count >= buckets[index - 1]!), `ADD buckets are cumulative: ${buckets.join(' ')}`);
  t.equal(sample(body, 'trestle_request_duration_seconds_bucket{command="ADD",le="+Inf"}'), 7, 'every ADD is in the +Inf bucket');
  t.equal(sample(body, 'trestle_request_duration_seconds_count{command="ADD"}'), 7, 'the ADD count');
  t.ok((sample(body, 'trestle_request_duration_seconds_sum{command="ADD"}') ?? 0) > 0, 'the ADD duration sum');
  t.equal(sample(body, 'trestle_request_duration_seconds_count{command="DEL"}'), 2, 'the DEL histogram');
  t.equal(sample(body, 'trestle_requests_in_flight'), 0, 'nothing in flight');
  t.equal(sample(body, `trestle_addresses_in_use{network="${list.name}"}`), 2, 'addresses in use in the network');
  // 10.77.0.0/16: .0.1 to .255.254 less the gateway.
  t.equal(sample(body, `trestle_addresses_free{network="${list.name}"}`), 65_534 - 1 - 2, 'addresses free in the network');

  for (const attachment of attachments.slice(0, 2)) await delChain(sandbox, list, attachment, { socket });
  const after = (await get(socket, '/metrics')).body;
  t.equal(sample(after, `trestle_addresses_in_use{network="${list.name}"}`), 0, 'none in use after the DELs');
  t.equal((await get(socket, '/nothing')).status, 404, 'another path answers 404');
});
