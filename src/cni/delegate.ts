import { findExecutable, runProgram } from '../util/exec.js';
import { quote } from '../util/quote.js';
import type { Command, Environment } from './env.js';
import { CniError, ErrorCode } from './errors.js';
import { isJsonObject } from './config.js';
import { parseResult, type Result } from './result.js';
import { isValidIdentifier } from './validate.js';

// How much of a delegated plugin's output an error carries in its details.
const maxDetails = 2000;

export function findPlugin(type: string, searchPath: readonly string[]): string {
  if (!isValidIdentifier(type)) throw new CniError(ErrorCode.InvalidConfig, `invalid plugin type ${quote(type)}`);
  const found = findExecutable(type, searchPath);
  if (found !== undefined) return found;
  throw new CniError(ErrorCode.InvalidConfig, `failed to find plugin "${type}" in CNI_PATH ${quote(searchPath.join(':'), 256)}`);
}

function bounded(text: string): string | undefined {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  return trimmed.length > maxDetails ? `${trimmed.slice(0, maxDetails)}…` : trimmed;
}

// The plugin's own CNI error when it printed one; otherwise a host command failure
// (103) that names the plugin and its exit status, with what it printed as details.
function delegatedError(type: string, stdout: string, stderr: string, status: number): CniError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    parsed = undefined;
  }
  if (isJsonObject(parsed) && Number.isInteger(parsed['code']) && (parsed['code'] as number) > 0 && typeof parsed['msg'] === 'string') {
    const details = typeof parsed['details'] === 'string' ? bounded(parsed['details']) : undefined;
    return new CniError(parsed['code'] as number, parsed['msg'], details);
  }
  return new CniError(
    ErrorCode.HostCommandFailed,
    `plugin "${type}" failed with exit status ${status} without a CNI error`,
    bounded(`${stdout}\n${stderr}`),
  );
}

// Runs another plugin (e.g. the IPAM plugin named in ipam.type) with this
// invocation's environment and configuration, as the spec requires, and returns
// its result or re-raises its error unchanged.
export async function delegate(type: string, command: Command, stdin: Buffer, searchPath: readonly string[], environment: Environment): Promise<Result | undefined> {
  const file = findPlugin(type, searchPath);
  const outcome = await runProgram(file, [], { input: stdin, env: { ...environment, CNI_COMMAND: command } });
  if (outcome.spawnError) throw new CniError(ErrorCode.IoFailure, `cannot run plugin "${type}" (${file}): ${outcome.spawnError.message}`);
  if (outcome.status !== 0) throw delegatedError(type, outcome.stdout, outcome.stderr, outcome.status);
  if (command !== 'ADD') return undefined;
  if (outcome.stdout.trim() === '') throw new CniError(ErrorCode.DecodingFailure, `plugin "${type}" succeeded but printed no result`, bounded(outcome.stderr));
  let parsed: unknown;
  try {
    parsed = JSON.parse(outcome.stdout);
  } catch {
    throw new CniError(ErrorCode.DecodingFailure, `plugin "${type}" printed a result that is not JSON`, bounded(outcome.stdout));
  }
  try {
    return parseResult(parsed);
  } catch (error) {
    if (error instanceof CniError) throw new CniError(ErrorCode.DecodingFailure, `plugin "${type}" printed an invalid result: ${error.message}`, bounded(outcome.stdout));
    throw error;
  }
}
