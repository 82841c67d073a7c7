import { execFile, findExecutable } from '../util/exec.js';
import type { Command, Environment } from './env.js';
import { CniError, ErrorCode } from './errors.js';
import { parseResult, type Result } from './result.js';
import { isValidIdentifier } from './validate.js';

export function findPlugin(type: string, searchPath: readonly string[]): string {
  if (!isValidIdentifier(type)) throw new CniError(ErrorCode.InvalidConfig, `invalid plugin type "${type}"`);
  const found = findExecutable(type, searchPath);
  if (found !== undefined) return found;
  throw new CniError(ErrorCode.InvalidConfig, `failed to find plugin "${type}" in CNI_PATH [${searchPath.join(':')}]`);
}

function delegatedError(type: string, stdout: string, stderr: string, status: number): CniError {
  try {
    const parsed = JSON.parse(stdout) as { code?: unknown; msg?: unknown; details?: unknown };
    if (typeof parsed.code === 'number' && typeof parsed.msg === 'string') {
      return new CniError(parsed.code, parsed.msg, typeof parsed.details === 'string' ? parsed.details : undefined);
    }
  } catch {
    // Not a CNI error object: report what the plugin printed instead.
  }
  const output = `${stdout}\n${stderr}`.trim();
  return new CniError(ErrorCode.Internal, `plugin "${type}" failed with exit status ${status}`, output === '' ? undefined : output);
}

// Runs another plugin (e.g. the IPAM plugin named in ipam.type) with this
// invocation's environment and configuration, as the spec requires, and returns
// its result or re-raises its error unchanged.
export function delegate(type: string, command: Command, stdin: Buffer, searchPath: readonly string[], environment: Environment): Result | undefined {
  const file = findPlugin(type, searchPath);
  const outcome = execFile(file, [], { input: stdin, env: { ...environment, CNI_COMMAND: command } });
  if (outcome.spawnError) throw new CniError(ErrorCode.IoFailure, `cannot run plugin "${type}" (${file}): ${outcome.spawnError.message}`);
  if (outcome.status !== 0) throw delegatedError(type, outcome.stdout, outcome.stderr, outcome.status);
  if (command !== 'ADD') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(outcome.stdout);
  } catch {
    throw new CniError(ErrorCode.DecodingFailure, `plugin "${type}" printed a result that is not JSON`, outcome.stdout.slice(0, 2000));
  }
  return parseResult(parsed);
}
