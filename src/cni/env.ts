import { parseCniArgs, type CniArgs } from './args.js';
import { CniError, ErrorCode } from './errors.js';
import { quote } from '../util/quote.js';
import { validateContainerId, validateInterfaceName } from './validate.js';

// The environment of one call, as a map: the process's own, or one a client sent.
export type Environment = Readonly<Record<string, string | undefined>>;

export const commands = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'] as const;
export type Command = (typeof commands)[number];

export interface Invocation {
  command: Command;
  containerId: string;
  // Empty when the runtime passed none (allowed for DEL).
  netns: string;
  ifname: string;
  args: CniArgs;
  path: string[];
}

type Variable = 'CNI_CONTAINERID' | 'CNI_NETNS' | 'CNI_IFNAME' | 'CNI_PATH';

// Which variables each command needs, as the reference skel requires them.
export const requiredVariables: Record<Command, readonly Variable[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  GC: ['CNI_PATH'],
  STATUS: [],
  VERSION: [],
};

export function parseCommand(value: string | undefined): Command {
  if (value === undefined || value === '') throw new CniError(ErrorCode.InvalidEnvironment, 'CNI_COMMAND is not set');
  if (!(commands as readonly string[]).includes(value)) {
    throw new CniError(ErrorCode.InvalidEnvironment, `unknown CNI_COMMAND ${quote(value)}: expected one of ${commands.join(', ')}`);
  }
  return value as Command;
}

export function parseInvocation(env: Environment): Invocation {
  const command = parseCommand(env['CNI_COMMAND']);
  const missing = requiredVariables[command].filter((name) => (env[name] ?? '') === '');
  if (missing.length > 0) {
    throw new CniError(ErrorCode.InvalidEnvironment, `required environment variables missing for ${command}: ${missing.join(', ')}`);
  }
  const invocation: Invocation = {
    command,
    containerId: env['CNI_CONTAINERID'] ?? '',
    netns: env['CNI_NETNS'] ?? '',
    ifname: env['CNI_IFNAME'] ?? '',
    args: parseCniArgs(env['CNI_ARGS']),
    path: (env['CNI_PATH'] ?? '').split(':').filter((dir) => dir !== ''),
  };
  if (invocation.containerId !== '') validateContainerId(invocation.containerId);
  if (invocation.ifname !== '') validateInterfaceName(invocation.ifname);
  if (invocation.netns !== '' && !invocation.netns.startsWith('/')) {
    throw new CniError(ErrorCode.InvalidEnvironment, `CNI_NETNS must be an absolute path to a network namespace, got ${quote(invocation.netns)}`);
  }
  return invocation;
}
