import { readFileSync } from 'node:fs';
import { writeAll } from '../util/output.js';
import { configVersion, parseJsonObject, parseNetConf, type NetConf } from './config.js';
import { parseInvocation, parseCommand, type Invocation } from './env.js';
import { CniError, ErrorCode, toErrorJson } from './errors.js';
import { formatResult, type Result } from './result.js';
import { latestVersion, versionAtLeast, versionInfo } from './version.js';

export interface PluginContext {
  invocation: Invocation;
  config: NetConf;
}

// What a plugin implements; the skeleton owns reading, validating, versions and output.
export interface Plugin {
  add(context: PluginContext): Promise<Result>;
  del(context: PluginContext): Promise<void>;
  check(context: PluginContext): Promise<void>;
  status(context: PluginContext): Promise<void>;
  gc(context: PluginContext): Promise<void>;
}

// Commands newer than the first spec versions; older configurations may not ask for them.
const minimumVersion: Partial<Record<Invocation['command'], string>> = {
  CHECK: '0.4.0',
  STATUS: '1.1.0',
  GC: '1.1.0',
};

function readStdin(): Buffer {
  try {
    return readFileSync(0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EAGAIN' || (error as NodeJS.ErrnoException).code === 'EOF') return Buffer.alloc(0);
    throw new CniError(ErrorCode.IoFailure, `cannot read the configuration from stdin: ${(error as Error).message}`);
  }
}

function versionOfBytes(bytes: Buffer): string | undefined {
  try {
    return configVersion(parseJsonObject(bytes, 'configuration'));
  } catch {
    return undefined;
  }
}

export type PluginSource = Plugin | (() => Promise<Plugin>);

async function dispatch(source: PluginSource, stdin: Buffer): Promise<unknown> {
  const command = parseCommand(process.env['CNI_COMMAND']);
  if (command === 'VERSION') {
    return versionInfo(stdin.length > 0 ? versionOfBytes(stdin) : undefined);
  }
  const invocation = parseInvocation(process.env);
  const config = parseNetConf(stdin);
  const minimum = minimumVersion[command];
  if (minimum !== undefined && !versionAtLeast(config.cniVersion, minimum)) {
    throw new CniError(ErrorCode.IncompatibleVersion, `configuration version ${config.cniVersion} does not allow ${command} (needs ${minimum} or later)`);
  }
  const context: PluginContext = { invocation, config };
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
  const syscall = (error as NodeJS.ErrnoException | undefined)?.syscall;
  if (syscall !== undefined) return new CniError(ErrorCode.IoFailure, `I/O failure: ${(error as Error).message}`);
  const message = error instanceof Error ? error.message : String(error);
  return new CniError(ErrorCode.Internal, `internal error: ${message}`);
}

// Runs one CNI invocation and exits. Only JSON reaches stdout; a stack trace, if
// any, goes to stderr where the runtime logs it.
export async function runPlugin(source: PluginSource): Promise<never> {
  const stdin = readStdin();
  try {
    const output = await dispatch(source, stdin);
    if (output !== undefined) writeAll(1, `${JSON.stringify(output)}\n`);
    process.exitCode = 0;
  } catch (error) {
    const cniError = asCniError(error);
    if (cniError.code === ErrorCode.Internal && error instanceof Error && error.stack) writeAll(2, `${error.stack}\n`);
    writeAll(1, `${JSON.stringify(toErrorJson(cniError, versionOfBytes(stdin) ?? latestVersion))}\n`);
    process.exitCode = 1;
  }
  process.exit();
}
