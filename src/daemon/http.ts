import { STATUS_CODES } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';

// The daemon's HTTP/1.1: one request per connection, its body sized by Content-Length,
// answered with Content-Length and "Connection: close". That is all its callers send
// (the native client, `trestle daemon status`, curl, a Prometheus scrape), and
// node:http's request and response streams cost about 0.3 ms per call here, a tenth
// of a whole ADD: the events between a connection and its request, a body read
// through a stream, a head built from a header object.

export interface HttpRequest {
  method: string;
  url: string;
  // Names in lower case.
  headers: ReadonlyMap<string, string>;
  body: Buffer;
  // The client closed its connection (gave up): an answer would reach nobody.
  gone(): boolean;
}

export type Respond = (status: number, body: string | Buffer, headers?: Readonly<Record<string, string>>) => void;

export type HttpHandler = (request: HttpRequest, respond: Respond) => void;

const maxHead = 64 * 1024;
const headEnd = Buffer.from('\r\n\r\n');

function answer(socket: Socket, status: number, body: string | Buffer, headers: Readonly<Record<string, string>> = {}): void {
  if (socket.destroyed || socket.writableEnded) return;
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\nContent-Length: ${bytes.length}\r\nConnection: close\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  socket.end(Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), bytes]));
}

// The request line and headers, or the status that refuses them.
function parseHead(head: string): { method: string; url: string; headers: Map<string, string> } | number {
  const lines = head.split('\r\n');
  const requestLine = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(lines[0] ?? '');
  if (!requestLine) return 400;
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) return 400;
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { method: requestLine[1]!, url: requestLine[2]!, headers };
}

function serve(socket: Socket, limits: HttpLimits, handle: HttpHandler): void {
  let received: Buffer = Buffer.alloc(0);
  let done = false;
  socket.on('error', () => socket.destroy());
  // A connection that stops sending before its request is whole would hold a
  // descriptor forever.
  socket.setTimeout(limits.requestMs, () => {
    if (!done) socket.destroy();
  });
  socket.on('data', (chunk: Buffer) => {
    // Bytes after a complete request are read and dropped: reading goes on so that a
    // client that closes is seen at once.
    if (done) return;
    received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
    const end = received.indexOf(headEnd);
    if (end < 0) {
      if (received.length > maxHead) fail(431);
      return;
    }
    const parsed = parseHead(received.toString('latin1', 0, end));
    if (typeof parsed === 'number') return fail(parsed);
    if (parsed.headers.has('transfer-encoding')) return fail(411);
    const declared = parsed.headers.get('content-length') ?? '0';
    if (!/^[0-9]{1,12}$/.test(declared)) return fail(400);
    const length = Number(declared);
    if (length > limits.maxBody) return fail(413);
    const start = end + headEnd.length;
    if (received.length - start < length) return;
    done = true;
    socket.setTimeout(0);
    const body = received.subarray(start, start + length);
    received = Buffer.alloc(0);
    handle({ ...parsed, body, gone: () => socket.destroyed || socket.readableEnded }, (status, payload, headers) => answer(socket, status, payload, headers));
  });
  // The client closed before its request was whole.
  socket.on('end', () => {
    if (!done) socket.destroy();
  });

  function fail(status: number): void {
    done = true;
    answer(socket, status, `${STATUS_CODES[status] ?? 'bad request'}\n`);
  }
}

export interface HttpLimits {
  // Bytes of body a request may have.
  maxBody: number;
  // How long a connection may stay silent before its request is whole.
  requestMs: number;
}

export function createHttpServer(limits: HttpLimits, handle: HttpHandler): Server {
  return createServer((socket) => serve(socket, limits, handle));
}
