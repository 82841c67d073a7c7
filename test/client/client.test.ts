// The resident mode's native client (client/trestle-client.c) against a fake daemon in this
// process: the request it sends, the answer it relays byte for byte, when it falls back to the
// one-shot plugin (a fake trestle-node beside a copy of the client) and when it answers 11.
// Unix sockets in a temp dir only; no network namespace is involved.
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';

const built = fileURLToPath(new URL('../../dist/client/trestle-client', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'trestle-client-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

// The one-shot stand-in tells what it was given: argv on stderr, stdin back on stdout, status 3.
const fakeNode = `#!/bin/sh
printf 'argc=%s argv1=%s var=%s\\n' "$#" "$1" "$TRESTLE_TEST_VAR" >&2
cat
exit 3
`;
const client = join(dir, 'with-node', 'trestle-client');
const lonely = join(dir, 'without-node', 'trestle-client');
mkdirSync(join(dir, 'with-node'));
mkdirSync(join(dir, 'without-node'));
copyFileSync(built, client);
copyFileSync(built, lonely);
writeFileSync(join(dir, 'with-node', 'trestle-node'), fakeNode);
chmodSync(join(dir, 'with-node', 'trestle-node'), 0o755);

interface Outcome {
  status: number | null;
  stdout: Buffer;
  stderr: Buffer;
  ms: number;
}

interface Call {
  argv0?: string;
  args?: string[];
  env?: Record<string, string>;
  input?: Buffer | string;
  exe?: string;
  stdinAfterMs?: number;
}

// Only what a runtime passes: no inherited NODE_OPTIONS or the like in the bytes compared.
function run(socket: string, call: Call = {}): Promise<Outcome> {
  const env = { PATH: '/usr/bin:/bin', TRESTLE_SOCKET: socket, ...call.env };
  const started = process.hrtime.bigint();
  const child = spawn(call.exe ?? client, call.args ?? [], { argv0: call.argv0 ?? 'trestle-bridge', env });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
  child.stdin.on('error', () => {}); // a client that exits before reading all of stdin
  setTimeout(() => child.stdin.end(call.input ?? ''), call.stdinAfterMs ?? 0);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status) =>
      resolve({ status, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr), ms: Number(process.hrtime.bigint() - started) / 1e6 }),
    );
  });
}

interface Request {
  method: string;
  url: string;
  rawHeaders: string[];
  body: Buffer;
}

let sockets = 0;
async function fakeDaemon(t: Test, answer: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void) {
  const path = join(dir, `daemon-${sockets++}.sock`);
  const requests: Request[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders, body });
      answer(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { path, requests };
}

function answered(res: ServerResponse, exit: number, out: Buffer, err: Buffer) {
  res.writeHead(200, { 'X-Trestle-Exit': String(exit), 'X-Trestle-Stdout-Length': String(out.length), 'Content-Length': String(out.length + err.length) });
  res.end(Buffer.concat([out, err]));
}

function cniError(outcome: Outcome): { cniVersion: string; code: number; msg: string } {
  const text = outcome.stdout.toString();
  if (!text.endsWith('\n') || text.indexOf('\n') !== text.length - 1) throw new Error(`not one line: ${JSON.stringify(text)}`);
  return JSON.parse(text) as { cniVersion: string; code: number; msg: string };
}

function envBytes(env: Record<string, string>): string[] {
  return Object.entries(env)
    .map(([key, value]) => `${key}=${value}`)
    .sort();
}

const config = Buffer.from('{"cniVersion":"0.4.0","name":"n","type":"trestle-bridge","prevResult":{"cniVersion":"1.0.0"}}');

t.test('the request: headers in order, then the environment and the stdin bytes unchanged', async (t) => {
  const daemon = await fakeDaemon(t, (_req, res) => answered(res, 0, Buffer.alloc(0), Buffer.alloc(0)));
  const env = { CNI_COMMAND: 'ADD', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=a', ODD: 'line one\nline two=x=y', EMPTY: '' };
  for (const input of [Buffer.from('{"a":1}\0tail\0'), Buffer.alloc(0), Buffer.alloc(1 << 20, 0xa5)]) {
    const outcome = await run(daemon.path, { env, input });
    t.equal(outcome.status, 0, `exit 0 (stdin of ${input.length} bytes)`);
    const request = daemon.requests.at(-1)!;
    t.equal(`${request.method} ${request.url}`, 'POST /v1/cni');
    // tap adds its own variables to every child's environment: ours must all be there.
    const sent = envBytes({ ...env, PATH: '/usr/bin:/bin', TRESTLE_SOCKET: daemon.path });
    const headers = request.rawHeaders;
    t.same(headers.filter((_, i) => i % 2 === 0), ['Host', 'Content-Length', 'X-Trestle-Plugin', 'X-Trestle-Build', 'X-Trestle-Env-Length', 'Connection']);
    const envLength = Number(headers[9]);
    t.same([headers[1], headers[3], headers[5], headers[11]], ['trestle', String(envLength + input.length), 'trestle-bridge', 'close']);
    t.equal(request.body.length, envLength + input.length, 'Content-Length is the body length');
    t.match(headers[7], /^[0-9a-f]{16}$/, 'a build id');
    const envPart = request.body.subarray(0, envLength);
    t.equal(envPart.at(-1), 0, 'every entry ends in NUL');
    const entries = envPart.subarray(0, -1).toString().split('\0');
    t.same(sent.filter((entry) => !entries.includes(entry)), [], 'the whole environment, an entry with a newline and = in its value included');
    t.ok(entries.every((entry) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(entry)), 'nothing but KEY=VALUE entries');
    t.ok(request.body.subarray(envLength).equals(input), 'stdin bytes unchanged after the environment');
  }
});

t.test('stdout, stderr and the exit status are relayed exactly', async (t) => {
  const out = Buffer.from([0x7b, 0x00, 0xff, 0x0d, 0x0a, 0x22]);
  const err = Buffer.from('warning: \0 \xfe\n', 'latin1');
  const big = Buffer.alloc(3 << 20, 0x41);
  let next: [number, Buffer, Buffer] = [0, out, err];
  const daemon = await fakeDaemon(t, (_req, res) => answered(res, ...next));
  for (const [exit, stdout, stderr] of [
    [0, out, err],
    [1, Buffer.alloc(0), err],
    [7, out, Buffer.alloc(0)],
    [0, big, big.subarray(1)],
  ] as [number, Buffer, Buffer][]) {
    next = [exit, stdout, stderr];
    const outcome = await run(daemon.path, { input: config });
    t.equal(outcome.status, exit, `exit ${exit}`);
    t.ok(outcome.stdout.equals(stdout), `stdout bytes (${stdout.length})`);
    t.ok(outcome.stderr.equals(stderr), `stderr bytes (${stderr.length})`);
  }
});

async function assertOneShot(t: Test, socket: string, input: Buffer, what: string, stdinAfterMs = 0) {
  const outcome = await run(socket, { env: { TRESTLE_TEST_VAR: 'seen here' }, input, argv0: 'trestle-portmap', stdinAfterMs });
  t.equal(outcome.status, 3, `${what}: the one-shot plugin's status`);
  t.equal(outcome.stderr.toString(), 'argc=1 argv1=trestle-portmap var=seen here\n', `${what}: its argv and environment`);
  t.ok(outcome.stdout.equals(input), `${what}: the same stdin bytes (${input.length})`);
}

t.test('409 and 503 run the one-shot plugin with the same stdin', async (t) => {
  for (const status of [409, 503]) {
    const daemon = await fakeDaemon(t, (_req, res) => res.writeHead(status, { 'X-Trestle-Build': '0000000000000000' }).end());
    await assertOneShot(t, daemon.path, Buffer.from('{"x":"\0"}'), `HTTP ${status}`);
    await assertOneShot(t, daemon.path, Buffer.alloc(1 << 20, 0x5a), `HTTP ${status}, 1 MiB`);
    await assertOneShot(t, daemon.path, Buffer.alloc(0), `HTTP ${status}, no stdin`);
    t.equal(daemon.requests.length, 3);
  }
});

t.test('with nobody listening the client runs the one-shot plugin', async (t) => {
  await assertOneShot(t, join(dir, 'absent.sock'), config, 'no socket');
  await assertOneShot(t, join(dir, 'no-such-dir', 'd.sock'), config, 'no directory');
  const file = join(dir, 'regular-file.sock');
  writeFileSync(file, 'not a socket');
  await assertOneShot(t, file, config, 'a regular file at the socket path');
  await assertOneShot(t, `${dir}/${'x'.repeat(120)}.sock`, config, 'a path too long for a unix socket');

  // A daemon killed with SIGKILL leaves its socket file behind.
  const stale = join(dir, 'stale.sock');
  const holder = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => console.log('up'))`], {
    env: { PATH: '/usr/bin:/bin' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve) => holder.stdout.once('data', resolve));
  const exited = new Promise((resolve) => holder.once('exit', resolve));
  holder.kill('SIGKILL');
  await exited;
  t.ok(existsSync(stale), 'the stale socket is there');
  await assertOneShot(t, stale, config, 'a stale socket');

  // The client connects before it reads stdin; a slow stdin lets the close land first.
  const closer = join(dir, 'closer.sock');
  const server = createNetServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(closer, resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  await assertOneShot(t, closer, config, 'a daemon that closed before the first byte was sent', 200);
});

t.test('a daemon that accepts and never answers: error 11 within the bound, exit 1', async (t) => {
  const daemon = await fakeDaemon(t, () => {});
  const outcome = await run(daemon.path, { input: config, env: { TRESTLE_CLIENT_TIMEOUT_MS: '300' } });
  t.equal(outcome.status, 1);
  t.same(cniError(outcome), {
    cniVersion: '0.4.0',
    code: 11,
    msg: `the Trestle daemon (${daemon.path}) did not answer within 300 ms: try again later`,
  });
  t.ok(outcome.ms >= 290 && outcome.ms < 1500, `answered after ${outcome.ms.toFixed(0)} ms`);
  t.equal(outcome.stderr.length, 0, 'nothing on stderr');
});

t.test('a daemon that closes mid-answer or answers badly: error 11, never a fallback', async (t) => {
  const partial = 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-Trestle-Exit: 0\r\nX-Trestle-Stdout-Length: 50\r\n\r\n{"cniVersion"';
  const cases: [string, (req: IncomingMessage, res: ServerResponse) => void, RegExp][] = [
    ['closed mid-body', (req) => req.socket.end(partial), /closed the connection before answering/],
    ['destroyed mid-body', (req) => req.socket.write(partial, () => req.socket.destroy()), /closed the connection before answering/],
    ['closed mid-headers', (req) => req.socket.end('HTTP/1.1 200 OK\r\nContent-Le'), /closed the connection before answering/],
    ['closed without a byte', (req) => req.socket.destroy(), /closed the connection before answering/],
    ['HTTP 500', (_req, res) => res.writeHead(500).end('oops'), /answered with HTTP status 500/],
    ['no X-Trestle-Exit', (_req, res) => res.writeHead(200, { 'X-Trestle-Stdout-Length': '0' }).end(), /malformed/],
    ['stdout longer than the body', (_req, res) => res.writeHead(200, { 'X-Trestle-Exit': '0', 'X-Trestle-Stdout-Length': '9' }).end('abc'), /malformed/],
    ['exit 256', (_req, res) => res.writeHead(200, { 'X-Trestle-Exit': '256', 'X-Trestle-Stdout-Length': '0' }).end(), /malformed/],
    ['not HTTP', (req) => req.socket.end('SSH-2.0-OpenSSH\r\n\r\n'), /malformed/],
  ];
  for (const [what, answer, msg] of cases) {
    const daemon = await fakeDaemon(t, answer);
    const outcome = await run(daemon.path, { input: '{"cniVersion":"9.9.9"}', env: { TRESTLE_TEST_VAR: 'x' } });
    t.equal(outcome.status, 1, `${what}: exit 1`);
    const error = cniError(outcome);
    t.same([error.cniVersion, error.code], ['1.1.0', 11], `${what}: code 11, an unknown cniVersion answered as 1.1.0`);
    t.match(error.msg, msg, `${what}: ${error.msg}`);
    t.equal(outcome.stderr.length, 0, `${what}: the one-shot plugin did not run`);
  }
});

t.test('stdin over 64 MiB is error 5; a missing one-shot plugin is error 5 naming it', async (t) => {
  const daemon = await fakeDaemon(t, (_req, res) => answered(res, 0, Buffer.alloc(0), Buffer.alloc(0)));
  const huge = Buffer.alloc((64 << 20) + 1, 0x20);
  huge.write('{"cniVersion":"1.0.0"}');
  const tooBig = await run(daemon.path, { input: huge });
  t.equal(tooBig.status, 1);
  t.same(cniError(tooBig), { cniVersion: '1.0.0', code: 5, msg: 'trestle-bridge: stdin is larger than 64 MiB' });
  t.equal(daemon.requests.length, 0, 'nothing was sent');

  const missing = await run(join(dir, 'absent.sock'), { exe: lonely, input: config });
  t.equal(missing.status, 1);
  t.same(cniError(missing), {
    cniVersion: '0.4.0',
    code: 5,
    msg: `cannot run the one-shot plugin ${join(dir, 'without-node', 'trestle-node')}: No such file or directory`,
  });
});

t.test('the plugin comes from argv[0], or argv[1] of trestle-client', async (t) => {
  const daemon = await fakeDaemon(t, (_req, res) => answered(res, 0, Buffer.alloc(0), Buffer.alloc(0)));
  const plugin = () => daemon.requests.at(-1)!.rawHeaders[5];
  for (const [argv0, args, expected] of [
    ['trestle-host-local', [], 'trestle-host-local'],
    ['/opt/cni/bin/trestle-portmap', [], 'trestle-portmap'],
    ['trestle-client', ['trestle-bridge'], 'trestle-bridge'],
    ['/x/trestle-client', ['trestle-host-local'], 'trestle-host-local'],
  ] as [string, string[], string][]) {
    const outcome = await run(daemon.path, { argv0, args });
    t.equal(outcome.status, 0, `${argv0} ${args.join(' ')}`);
    t.equal(plugin(), expected);
  }
  for (const [argv0, args] of [
    ['trestle-client', []],
    ['trestle-client', ['bridge']],
    ['bridge', []],
    ['trestle-bridge.old', []],
    ['', []],
  ] as [string, string[]][]) {
    const outcome = await run(daemon.path, { argv0, args });
    t.equal(outcome.status, 2, `usage error for argv0 '${argv0}' ${args.join(' ')}`);
    t.equal(outcome.stdout.length, 0, 'nothing on stdout');
    t.match(outcome.stderr.toString(), /trestle-bridge, trestle-host-local or trestle-portmap/);
  }
  t.equal(daemon.requests.length, 4, 'usage errors send nothing');
});

t.test('speed: start-up plus an empty round trip (printed, not asserted)', async (t) => {
  const daemon = await fakeDaemon(t, (_req, res) => answered(res, 0, Buffer.alloc(0), Buffer.alloc(0)));
  const p50 = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const rounds = async (call: Call) => {
    const times: number[] = [];
    for (let i = 0; i < 200; i++) times.push((await run(daemon.path, call)).ms);
    return p50(times);
  };
  await rounds({}); // warm the page cache and the fake daemon
  const client = await rounds({});
  const baseline = await rounds({ exe: '/bin/true' });
  t.comment(`client start-up + empty round trip, spawned from Node: p50 ${client.toFixed(3)} ms over 200 runs`);
  t.comment(`/bin/true spawned the same way: p50 ${baseline.toFixed(3)} ms; difference ${(client - baseline).toFixed(3)} ms`);
  t.pass('measured');
});
