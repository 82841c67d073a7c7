import { interfaceNameProblem } from '../util/ifname.js';
import { directoryProblem, normalizedDirectory } from '../util/paths.js';
import { quote } from '../util/quote.js';
import { CniError, ErrorCode } from './errors.js';

// The spec's grammar for container IDs and network names; it also keeps both safe to
// use as file names and inside nft comments and scripts. The grammar is ASCII, so
// the length limit in bytes is the limit in characters.
const identifierPattern = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const maxIdentifierBytes = 255;

export function isValidIdentifier(value: string): boolean {
  return Buffer.byteLength(value, 'utf8') <= maxIdentifierBytes && identifierPattern.test(value);
}

export function validateContainerId(id: string): void {
  if (id === '') throw new CniError(ErrorCode.InvalidEnvironment, 'CNI_CONTAINERID is empty');
  if (!isValidIdentifier(id)) {
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `invalid container ID ${quote(id)}: must start with a letter or digit and contain only letters, digits, "_", "." and "-" (at most ${maxIdentifierBytes} characters)`,
    );
  }
}

export function validateNetworkName(name: unknown): string {
  if (typeof name !== 'string' || name === '') {
    throw new CniError(ErrorCode.InvalidConfig, 'network configuration has no "name"');
  }
  if (!isValidIdentifier(name)) {
    throw new CniError(
      ErrorCode.InvalidConfig,
      `invalid network name ${quote(name)}: must start with a letter or digit and contain only letters, digits, "_", "." and "-" (at most ${maxIdentifierBytes} characters)`,
    );
  }
  return name;
}

// CNI_IFNAME is part of the environment (code 4); a name from the configuration,
// such as "bridge", is configuration (code 7).
export function validateInterfaceName(name: string, what = 'CNI_IFNAME', code: number = ErrorCode.InvalidEnvironment): void {
  const problem = interfaceNameProblem(name);
  if (problem !== undefined) throw new CniError(code, `invalid interface name ${quote(name)} in ${what}: it ${problem}`);
}

// A directory for Trestle's files named by the configuration (ipam.dataDir, stateDir);
// returns it without a trailing "/".
export function validateDirectory(value: unknown, key: string): string {
  if (typeof value !== 'string') throw new CniError(ErrorCode.InvalidConfig, `${key} must be an absolute path, got ${quote(value)}`);
  const problem = directoryProblem(value);
  if (problem !== undefined) throw new CniError(ErrorCode.InvalidConfig, `invalid ${key} ${quote(value)}: it ${problem}`);
  return normalizedDirectory(value);
}
