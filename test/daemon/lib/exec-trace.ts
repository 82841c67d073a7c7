// Programs started, as strace sees them: a tracer attached to a running daemon (all its
// threads, and every child they fork), and the prefix that runs one client call under
// its own tracer. Only successful execve/execveat count: a PATH search that fails is
// no process. For test/daemon/processes.test.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename } from 'node:path';
import { findProgram } from '../../helpers/programs.js';
import { sleep } from '../../helpers/faults.js';

export interface Exec {
  // Seconds since the epoch, as strace -ttt prints them.
  at: number;
  pid: number;
  program: string;
}

const straceOptions = ['-f', '-qq', '-z', '-ttt', '-e', 'trace=execve,execveat'];

export function straceProgram(): string {
  const strace = findProgram('strace');
  if (!strace) throw new Error('strace is missing (scripts/install-deps.sh installs it)');
  return strace;
}

// The command prefix that traces a client and whatever it starts into `output`.
export function tracedPrefix(output: string): string[] {
  return [straceProgram(), ...straceOptions, '-o', output];
}

// strace's lines for execve/execveat ("<pid> <time> execve("/usr/sbin/ip", [...") as
// execs. A call split by another thread's syscall ("<unfinished ...>" then
// "<... execve resumed>") is printed by -z only once it succeeded, on its first part.
export function parseExecs(text: string): Exec[] {
  const execs: Exec[] = [];
  for (const line of text.split('\n')) {
    const match = /^(\d+)\s+(\d+\.\d+)\s+execve(?:at)?\((?:[^,]*,\s*)?"((?:[^"\\]|\\.)*)"/.exec(line);
    if (!match) continue;
    const program = execveatPath(line) ?? (match[3] as string);
    execs.push({ pid: Number(match[1]), at: Number(match[2]), program: basename(program) });
  }
  return execs;
}

// execveat(dirfd, "path", ...): the path is the second argument; execve's is the first.
function execveatPath(line: string): string | undefined {
  const match = /execveat\([^,]*,\s*"((?:[^"\\]|\\.)*)"/.exec(line);
  return match?.[1];
}

export function readExecs(path: string): Exec[] {
  return existsSync(path) ? parseExecs(readFileSync(path, 'utf8')) : [];
}

export interface Tracer {
  pid: number;
  // The daemon's threads strace does not trace (one it failed to follow); empty when
  // every thread is traced.
  untraced(): number[];
  // Detaches (SIGTERM lets strace restore the tracees and flush its log) and waits for
  // strace to end; then the log is complete. Safe to call twice.
  stop(): Promise<void>;
}

function tracerOf(pid: number): number {
  try {
    const match = /^TracerPid:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(match?.[1] ?? 0);
  } catch {
    return -1;
  }
}

// Attaches strace to every thread of `pid` (and follows what they start), writing to
// `output`; resolves once each thread is traced.
export async function attachTracer(pid: number, output: string): Promise<Tracer> {
  const child: ChildProcess = spawn(straceProgram(), [...straceOptions, '-o', output, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const ended = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const tracer = child.pid ?? -1;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(tracer, 'SIGTERM');
      const killed = await Promise.race([ended.then(() => false), sleep(5_000).then(() => true)]);
      if (killed && child.exitCode === null && child.signalCode === null) process.kill(tracer, 'SIGKILL');
    }
    await ended;
  };
  const untraced = (): number[] =>
    readdirSync(`/proc/${pid}/task`)
      .map(Number)
      .filter((task) => tracerOf(task) !== tracer);
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (untraced().length === 0) return { pid: tracer, untraced, stop };
    if (Date.now() > deadline || child.exitCode !== null) {
      await stop();
      throw new Error(`strace did not attach to ${pid}: ${stderr.trim()}`);
    }
    await sleep(20);
  }
}
