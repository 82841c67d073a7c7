import { spawn } from 'node:child_process';
import { unlinkSync } from 'node:fs';
import { isSea } from 'node:sea';
import { handleRequest } from '../cni/skel.js';
import { loadNativeLibraries } from '../host/native/preload.js';
import { runProgramsConcurrently } from '../util/exec.js';
import { watchStoreDirectories } from '../ipam/disk-store.js';
import { keepLocksBetweenCalls, releaseKeptLocks } from '../util/lock.js';
import { installedBuild } from './build-id.js';
import { createHttpServer, type HttpRequest, type Respond } from './http.js';
import { listen, type SocketSource } from './listener.js';
import { Metrics } from './metrics.js';
import { plugins } from './plugins.js';
import { Pools } from './pools.js';
import { KeyedQueue } from '../util/keyed-queue.js';
import { decodeCall, header } from './wire.js';

// How long the daemon keeps a store's lock after a call (see keepLocksBetweenCalls).
const lockLingerMs = 25;

// The client reads at most this much stdin; the environment is small.
const maxBody = 80 * 1024 * 1024;

export interface DaemonOptions {
  source: SocketSource;
  // Where trestle.build sits: the directory of the running bundle.
  bundleDir: string;
  version: string;
  log(line: string): void;
}

export interface DaemonStatus {
  running: true;
  pid: number;
  uptimeSeconds: number;
  version: string;
  build: string | undefined;
  served: number;
  inFlight: number;
}

// The attachment a call is about, for ordering calls on it.
function attachmentKey(environment: Record<string, string>, stdin: Buffer): string {
  let network = '';
  try {
    const parsed = JSON.parse(stdin.toString('utf8')) as { name?: unknown };
    if (typeof parsed.name === 'string') network = parsed.name;
  } catch {
    // Not JSON: the call fails on its own, in no particular order.
  }
  return `${network}\0${environment['CNI_CONTAINERID'] ?? ''}\0${environment['CNI_IFNAME'] ?? ''}`;
}

export class Daemon {
  private readonly metrics = new Metrics();
  private readonly pools = new Pools();
  private readonly queue = new KeyedQueue();
  // node:http's own bound on a request (requestTimeout) is 300 s.
  private readonly server = createHttpServer({ maxBody, requestMs: 300_000 }, (request, respond) => void this.route(request, respond));
  private readonly build: string | undefined;
  private closing = false;
  private restartWanted = false;
  private idle: Array<() => void> = [];

  constructor(private readonly options: DaemonOptions) {
    this.build = installedBuild(options.bundleDir);
    // Requests share this process: none may block another while a delegated plugin runs.
    runProgramsConcurrently();
    // Deleting a veth keeps a thread of libuv's pool for 15-40 ms (removeLink), and the
    // locks' file system calls run on the same pool: 4 threads (the default) would
    // make a burst of DELs stall every other call. Read when the pool first starts,
    // which no daemon code has made it do yet.
    process.env['UV_THREADPOOL_SIZE'] ??= '16';
    keepLocksBetweenCalls(lockLingerMs);
    watchStoreDirectories();
  }

  async start(): Promise<void> {
    const unavailable = loadNativeLibraries();
    if (unavailable !== undefined) this.options.log(`native libraries: ${unavailable}`);
    await listen(this.server, this.options.source);
    const where = this.options.source.kind === 'path' ? this.options.source.path : `socket-activated fd ${this.options.source.fd}`;
    this.options.log(`listening on ${where} (pid ${process.pid}, build ${this.build ?? 'unknown'})`);
  }

  status(): DaemonStatus {
    return {
      running: true,
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - this.metrics.startedAt) / 1000),
      version: this.options.version,
      build: this.build,
      served: this.metrics.served,
      inFlight: this.metrics.inFlight,
    };
  }

  private async route(request: HttpRequest, respond: Respond): Promise<void> {
    try {
      if (request.method === 'POST' && request.url === '/v1/cni') await this.call(request, respond);
      else if (request.method === 'GET' && request.url === '/v1/status') respond(200, `${JSON.stringify(this.status())}\n`, { 'Content-Type': 'application/json' });
      else if (request.method === 'GET' && request.url === '/metrics') respond(200, this.metrics.render(this.pools.usage()), { 'Content-Type': 'text/plain; version=0.0.4' });
      else respond(404, 'not found\n');
    } catch (error) {
      respond(400, `${error instanceof Error ? error.message : String(error)}\n`);
    }
  }

  private async call(request: HttpRequest, respond: Respond): Promise<void> {
    const pluginName = request.headers.get(header.plugin) ?? '';
    const plugin = plugins[pluginName];
    if (!plugin) {
      respond(400, `unknown plugin ${JSON.stringify(pluginName.slice(0, 64))}\n`);
      return;
    }
    const clientBuild = request.headers.get(header.build) ?? '';
    if (this.build === undefined || clientBuild !== this.build) {
      // The call runs one-shot with the client's own build; this daemon makes way for
      // the installed one if that is newer than itself.
      respond(409, 'build mismatch\n', { 'X-Trestle-Build': this.build ?? 'unknown' });
      if (installedBuild(this.options.bundleDir) !== this.build) this.restartWhenIdle();
      return;
    }
    if (this.closing) {
      respond(503, 'shutting down\n');
      return;
    }
    const { environment, stdin } = decodeCall(request.body, Number(request.headers.get(header.environmentLength)));
    this.metrics.inFlight++;
    const started = process.hrtime.bigint();
    try {
      const key = attachmentKey(environment, stdin);
      const answer = await this.queue.run(key, () => {
        // A client that gave up (its bound passed while the call waited, or the daemon
        // was stopped) has told the runtime the call failed: it must not happen later.
        if (request.gone()) return Promise.resolve(undefined);
        return handleRequest(plugin, { environment, stdin });
      });
      if (answer === undefined) {
        this.options.log(`${environment['CNI_COMMAND'] || '-'} ${pluginName}: the client is gone; not run`);
        return;
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      // The answer first: the bookkeeping below is nothing the client waits for.
      const stderr = answer.log.map((line) => `${pluginName}: ${line}\n`).join('');
      const stdout = Buffer.from(answer.stdout);
      respond(200, stderr === '' ? stdout : Buffer.concat([stdout, Buffer.from(stderr)]), { [header.exit]: String(answer.exitCode), [header.stdoutLength]: String(stdout.length) });
      const command = environment['CNI_COMMAND'] ?? '';
      let code = answer.exitCode;
      if (code !== 0) {
        try {
          code = (JSON.parse(answer.stdout) as { code?: number }).code ?? code;
        } catch {
          // Not a CNI error object: the exit status stands.
        }
      }
      this.metrics.record(pluginName, command, code, seconds);
      if (command === 'ADD' && answer.exitCode === 0) this.pools.noteCall(stdin);
      const [network, container, ifname] = key.split('\0');
      this.options.log(`${command || '-'} ${pluginName} network=${network || '-'} container=${container || '-'} ifname=${ifname || '-'} ${(seconds * 1000).toFixed(1)}ms code=${code}`);
    } finally {
      this.metrics.inFlight--;
      if (this.metrics.inFlight === 0) for (const resolve of this.idle.splice(0)) resolve();
    }
  }

  private whenIdle(): Promise<void> {
    return this.metrics.inFlight === 0 ? Promise.resolve() : new Promise((resolve) => this.idle.push(resolve));
  }

  // Stops accepting, finishes what is in flight, and closes.
  async stop(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.server.close();
    await this.whenIdle();
    await releaseKeptLocks();
    if (this.options.source.kind === 'path') {
      try {
        unlinkSync(this.options.source.path);
      } catch {
        // Already gone.
      }
    }
  }

  // Onto the installed build: under systemd the unit restarts us (exit status 75,
  // RestartForceExitStatus); otherwise a new daemon is started from the same command
  // line once this one has let go of the socket. Calls meanwhile run one-shot.
  private restartWhenIdle(): void {
    if (this.restartWanted) return;
    this.restartWanted = true;
    this.options.log('a newer build is installed: restarting once idle');
    void this.stop().then(() => {
      if (process.env['INVOCATION_ID'] !== undefined) process.exit(75);
      // A single executable's argv[1] is its own name, not a script to run.
      const replacement = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(isSea() ? 2 : 1)], { argv0: process.argv0, detached: true, stdio: 'inherit' });
      replacement.unref();
      process.exit(0);
    });
  }
}
