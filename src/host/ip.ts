import { runProgram, startFile, type ExecOutcome } from '../util/exec.js';
import { quote } from '../util/quote.js';
import { HostError } from './errors.js';
import { inNamespace } from './netns.js';

// One `ip` command line in a batch, kept as tokens so each one can be checked.
export interface IpOperation {
  tokens: string[];
  // Human words for error messages ("create veth pair veth1a2b3c4d/eth0").
  what: string;
  // Kernel answers that mean "already as wanted" (e.g. "File exists" when another
  // ADD created the shared bridge a moment earlier).
  tolerate?: RegExp;
}

// ip -batch splits lines on whitespace and treats '#' and quotes specially; every
// token is validated before it reaches a batch, so a hostile name cannot add a command.
// No "%" either: no value of ours needs it, and in a link name the kernel reads it
// as a template ("fz%d" creates "fz0").
const safeToken = /^[A-Za-z0-9_.:/@+,=-]+$/;

function renderLine(operation: IpOperation): string {
  for (const token of operation.tokens) {
    if (!safeToken.test(token)) throw new HostError(`refusing to ${operation.what}: unsafe value ${quote(token)}`, 'unsafe value');
  }
  return operation.tokens.join(' ');
}

function failedLines(stderr: string): Map<number, string> {
  const failures = new Map<number, string>();
  let pending: string[] = [];
  for (const line of stderr.split('\n')) {
    const match = /^Command failed -:(\d+)$/.exec(line.trim());
    if (match) {
      failures.set(Number(match[1]), pending.join('; ') || 'failed');
      pending = [];
    } else if (line.trim() !== '') {
      pending.push(line.trim().replace(/^RTNETLINK answers: /, '').replace(/^Error: /, ''));
    }
  }
  return failures;
}

// Runs all operations in one `ip -force -batch` process (in `netns` when given).
// -force keeps going after a failure so that tolerated ones ("File exists") do not
// stop the batch; any other failure is raised, naming the operation. Returns the
// operations whose failure was tolerated.
export async function runIpBatch(operations: readonly IpOperation[], netns?: string): Promise<IpOperation[]> {
  if (operations.length === 0) return [];
  const [file, args] = inNamespace(netns, 'ip', ['-force', '-batch', '-']);
  return batchOutcome(operations, await runProgram(file, args, { input: batchScript(operations) }));
}

// The same, started now and finished later: the caller does other host work meanwhile.
export function startIpBatch(operations: readonly IpOperation[], netns?: string): { finish(): Promise<IpOperation[]> } {
  if (operations.length === 0) return { finish: async () => [] };
  const [file, args] = inNamespace(netns, 'ip', ['-force', '-batch', '-']);
  const running = startFile(file, args, { input: batchScript(operations) });
  return { finish: async () => batchOutcome(operations, await running.finished) };
}

function batchScript(operations: readonly IpOperation[]): string {
  return `${operations.map(renderLine).join('\n')}\n`;
}

function batchOutcome(operations: readonly IpOperation[], outcome: ExecOutcome): IpOperation[] {
  if (outcome.spawnError) throw new HostError(`cannot run ip: ${outcome.spawnError.message}`, outcome.spawnError.message);
  if (outcome.status === 0) return [];
  const failures = failedLines(outcome.stderr);
  if (failures.size === 0) throw new HostError(`ip failed: ${outcome.stderr.trim()}`, outcome.stderr.trim());
  const tolerated: IpOperation[] = [];
  for (const [line, reason] of failures) {
    const operation = operations[line - 1];
    if (!operation) throw new HostError(`ip failed: ${reason}`, reason);
    if (operation.tolerate?.test(reason)) {
      tolerated.push(operation);
      continue;
    }
    throw new HostError(`failed to ${operation.what}: ${reason}`, reason, /Cannot find device|does not exist|No such device/.test(reason), operation.what);
  }
  return tolerated;
}

// `ip -j <args>` parsed; undefined when the object does not exist.
export async function ipJson<T>(args: readonly string[], netns?: string): Promise<T | undefined> {
  const [file, argv] = inNamespace(netns, 'ip', ['-j', ...args]);
  const outcome = await runProgram(file, argv);
  if (outcome.spawnError) throw new HostError(`cannot run ip: ${outcome.spawnError.message}`, outcome.spawnError.message);
  if (outcome.status !== 0) {
    const reason = outcome.stderr.trim();
    if (/does not exist|Cannot find device|No such device/.test(reason)) return undefined;
    throw new HostError(`ip ${args.join(' ')} failed: ${reason}`, reason);
  }
  const text = outcome.stdout.trim();
  return (text === '' ? [] : JSON.parse(text)) as T;
}

// Several `ip -j` queries in one process: each prints one JSON array on its own line.
// Batch lines take no global options (-d, -4, -6): a query must do without them.
export async function ipJsonBatch(queries: readonly IpOperation[], netns?: string): Promise<unknown[][]> {
  const [file, args] = inNamespace(netns, 'ip', ['-j', '-force', '-batch', '-']);
  const outcome = await runProgram(file, args, { input: `${queries.map(renderLine).join('\n')}\n` });
  if (outcome.spawnError) throw new HostError(`cannot run ip: ${outcome.spawnError.message}`, outcome.spawnError.message);
  const answers = outcome.stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as unknown[]);
  // A failed query prints nothing; callers get an empty answer for it.
  const failures = failedLines(outcome.stderr);
  const results: unknown[][] = [];
  let next = 0;
  for (let i = 1; i <= queries.length; i++) results.push(failures.has(i) ? [] : (answers[next++] ?? []));
  return results;
}
