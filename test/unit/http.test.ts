// The daemon's own HTTP/1.1 (src/daemon/http.ts), spoken to byte by byte over a unix
// socket: what a request must be, what a refused one hears, and a client that gives up.
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createHttpServer, type HttpRequest } from '../../src/daemon/http.js';
import type { Teardownable } from '../../src/sandbox/sandbox.js';

interface Exchange {
  // Everything the server sent before it closed.
  answer: string;
}

async function withServer(t: Teardownable, handle: Parameters<typeof createHttpServer>[1], requestMs = 60_000): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'trestle-http-'));
  const path = join(dir, 'http.sock');
  const server: Server = createHttpServer({ maxBody: 1024, requestMs }, handle);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.teardown(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });
  return path;
}

// Sends the chunks (each written on its own), ends the request side when told to, and
// reads until the server closes.
function exchange(path: string, chunks: ReadonlyArray<string | Buffer>, endAfter = false): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const received: Buffer[] = [];
    socket.on('connect', () => {
      for (const chunk of chunks) socket.write(chunk);
      if (endAfter) socket.end();
    });
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('end', () => resolve({ answer: Buffer.concat(received).toString('latin1') }));
    socket.on('error', reject);
  });
}

function status(exchange: Exchange): number {
  return Number(/^HTTP\/1\.1 (\d{3}) /.exec(exchange.answer)?.[1] ?? 0);
}

t.test('a whole request reaches the handler; the answer is sized and closes', async (t) => {
  const seen: HttpRequest[] = [];
  const path = await withServer(t, (request, respond) => {
    seen.push(request);
    respond(200, `got ${request.body.toString()}`, { 'X-Trestle-Exit': '0' });
  });
  const body = 'hello, daemon';
  // The head and the body in pieces, as a slow writer sends them; bytes after the body are dropped.
  const reply = await exchange(path, ['POST /v1/cni HTTP/1.1\r\nHost: trestle\r\nX-Trestle-Plugin: trestle-bridge\r\n', `Content-Length: ${body.length}\r\n\r\nhello, `, 'daemon', 'EXTRA']);
  t.equal(status(reply), 200);
  t.match(reply.answer, /\r\nContent-Length: 17\r\n/, 'Content-Length of the body');
  t.match(reply.answer, /\r\nConnection: close\r\n/, 'and the connection closes');
  t.match(reply.answer, /\r\nX-Trestle-Exit: 0\r\n/, "with the handler's headers");
  t.ok(reply.answer.endsWith('\r\n\r\ngot hello, daemon'), 'the body follows the head');
  t.equal(seen.length, 1);
  t.equal(seen[0]?.method, 'POST');
  t.equal(seen[0]?.url, '/v1/cni');
  t.equal(seen[0]?.headers.get('x-trestle-plugin'), 'trestle-bridge', 'header names in lower case');
  t.equal(seen[0]?.body.toString(), body, 'exactly Content-Length bytes of body');

  const get = await exchange(path, ['GET /v1/status HTTP/1.0\r\n\r\n']);
  t.equal(status(get), 200, 'a GET without a body (HTTP/1.0 too)');
  t.equal(seen[1]?.body.length, 0);
});

t.test('what is refused, and with which status', async (t) => {
  let handled = 0;
  const path = await withServer(t, (_request, respond) => {
    handled += 1;
    respond(200, 'ok');
  });
  const cases: Array<[string, Array<string | Buffer>, number]> = [
    ['not an HTTP request line', ['SSH-2.0-OpenSSH\r\n\r\n'], 400],
    ['HTTP/2 preface', ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'], 400],
    ['a header line without a colon', ['GET / HTTP/1.1\r\nnonsense\r\n\r\n'], 400],
    ['a Content-Length that is no number', ['POST / HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n'], 400],
    ['a chunked body', ['POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'], 411],
    ['a body over the limit', ['POST / HTTP/1.1\r\nContent-Length: 1025\r\n\r\n'], 413],
    ['a head over 64 KiB', [`GET / HTTP/1.1\r\nX-Long: ${'a'.repeat(70 * 1024)}`], 431],
  ];
  for (const [label, chunks, expected] of cases) t.equal(status(await exchange(path, chunks)), expected, label);
  t.equal(handled, 0, 'none of them reached the handler');
});

t.test('a client that closes before the answer is seen as gone', async (t) => {
  let resolveSeen: (request: HttpRequest) => void = () => undefined;
  const seen = new Promise<HttpRequest>((resolve) => (resolveSeen = resolve));
  let respondLater: (() => void) | undefined;
  const path = await withServer(t, (request, respond) => {
    respondLater = () => respond(200, 'too late');
    resolveSeen(request);
  });
  const socket = connect(path);
  await new Promise((resolve) => socket.on('connect', resolve));
  socket.write('POST /v1/cni HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi');
  const request = await seen;
  t.notOk(request.gone(), 'not gone while the client waits');
  const closed = new Promise((resolve) => socket.on('close', resolve));
  socket.destroy();
  await closed;
  for (let i = 0; i < 100 && !request.gone(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  t.ok(request.gone(), 'gone once it closed');
  t.doesNotThrow(() => respondLater?.(), 'answering it then is no error');

  const half = await exchange(path, ['POST /v1/cni HTTP/1.1\r\nContent-Length: 10\r\n\r\nhalf'], true);
  t.equal(half.answer, '', 'a request cut short is dropped when its client ends it');
});

t.test('a connection that goes silent before its request is whole is closed', async (t) => {
  let handled = 0;
  const path = await withServer(
    t,
    (_request, respond) => {
      handled += 1;
      respond(200, 'ok');
    },
    100,
  );
  const started = performance.now();
  const silent = await exchange(path, ['POST /v1/cni HTTP/1.1\r\nContent-Length: 10\r\n\r\nhal']);
  t.equal(silent.answer, '', 'closed without an answer');
  t.ok(performance.now() - started >= 90, 'once it was silent for the limit');
  t.equal(handled, 0, 'never handled');
  // A request that is whole in time is answered however long its handler takes.
  const slow = await withServer(
    t,
    (_request, respond) => {
      setTimeout(() => respond(200, 'late but answered'), 250);
    },
    100,
  );
  t.match((await exchange(slow, ['GET / HTTP/1.1\r\n\r\n'])).answer, /late but answered$/);
});
