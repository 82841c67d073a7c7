import { configVersion, parseJsonObject, parseNetConf, type NetConf } from './config.js';
import { parseInvocation, parseCommand, type Environment, type Invocation } from './env.js';
import { CniError, ErrorCode, toErrorJson } from './errors.js';
import { formatResult, type Result } from './result.js';
import { latestVersion, supportedVersions, versionAtLeast, versionInfo } from './version.js';

export interface PluginContext {
  invocation: Invocation;
  config: NetConf;
  // The caller's whole environment, handed on unchanged to a delegated plugin.
  environment: Environment;
  // A line for the runtime's log (stderr), never part of the answer.
  warn(message: string): void;
}

// What a plugin implements; the skeleton owns reading, validating, versions and output.
export interface Plugin {
  add(context: PluginContext): Promise<Result>;
  del(context: PluginContext): Promise<void>;
  check(context: PluginContext): Promise<void>;
  status(context: PluginContext): Promise<void>;
  gc(context: PluginContext): Promise<void>;
}

// One CNI call as values: what the runtime passed, and what it gets back. The
// one-shot executable and a resident service both go through `handleRequest`.
export interface Request {
  environment: Environment;
  stdin: Buffer;
}

export interface Answer {
  stdout: string;
  exitCode: number;
  // Lines for the runtime's log (stderr).
  log: string[];
}

// Commands newer than the first spec versions; older configurations may not ask for them.
export const minimumVersion: Partial<Record<Invocation['command'], string>> = {
  CHECK: '0.4.0',
  STATUS: '1.1.0',
  GC: '1.1.0',
};

// The version the caller speaks, when it is one we know: an error is then given in
// its shape (and a version we do not know is never echoed back in the answer).
function versionOfBytes(bytes: Buffer): string | undefined {
  try {
    const version = configVersion(parseJsonObject(bytes, 'configuration'));
    return (supportedVersions as readonly string[]).includes(version) ? version : undefined;
  } catch {
    return undefined;
  }
}

export type PluginSource = Plugin | (() => Promise<Plugin>);

async function dispatch(source: PluginSource, request: Request, log: string[]): Promise<unknown> {
  const command = parseCommand(request.environment['CNI_COMMAND']);
  if (command === 'VERSION') {
    return versionInfo(request.stdin.length > 0 ? versionOfBytes(request.stdin) : undefined);
  }
  const invocation = parseInvocation(request.environment);
  const config = parseNetConf(request.stdin);
  const minimum = minimumVersion[command];
  if (minimum !== undefined && !versionAtLeast(config.cniVersion, minimum)) {
    throw new CniError(ErrorCode.IncompatibleVersion, `configuration version ${config.cniVersion} does not allow ${command} (needs ${minimum} or later)`);
  }
  const context: PluginContext = { invocation, config, environment: request.environment, warn: (message) => log.push(message) };
  const plugin = typeof source === 'function' ? await source() : source;
  switch (command) {
    case 'ADD':
      return formatResult(await plugin.add(context), config.cniVersion);
    case 'DEL':
      await plugin.del(context);
      return undefined;
    case 'CHECK':
      await plugin.check(context);
      return undefined;
    case 'STATUS':
      await plugin.status(context);
      return undefined;
    case 'GC':
      await plugin.gc(context);
      return undefined;
  }
}

function asCniError(error: unknown): CniError {
  if (error instanceof CniError) return error;
  // A failed system call (a store or state directory that cannot be written, a full
  // disk) is an I/O failure the operator can act on, not an internal error.
  const errno = error as NodeJS.ErrnoException | undefined;
  if (errno?.syscall !== undefined) {
    return new CniError(ErrorCode.IoFailure, `I/O failure: ${errno.syscall}${errno.path ? ` ${errno.path}` : ''}: ${errno.code ?? 'failed'}`);
  }
  // A defect of ours: the runtime gets a stable message, the log gets the details.
  return new CniError(ErrorCode.Internal, 'internal error in the plugin; its log (stderr) has the details');
}

// Runs one CNI invocation given as values. Only JSON reaches stdout; a stack trace,
// if any, goes to the log.
export async function handleRequest(source: PluginSource, request: Request): Promise<Answer> {
  const log: string[] = [];
  try {
    const output = await dispatch(source, request, log);
    return { stdout: output === undefined ? '' : `${JSON.stringify(output)}\n`, exitCode: 0, log };
  } catch (error) {
    const cniError = asCniError(error);
    if (cniError.code === ErrorCode.Internal) log.push(error instanceof Error && error.stack ? error.stack : String(error));
    return { stdout: `${JSON.stringify(toErrorJson(cniError, versionOfBytes(request.stdin) ?? latestVersion))}\n`, exitCode: 1, log };
  }
}
