import { CniError, ErrorCode } from './errors.js';

// The spec's grammar for container IDs and network names; it also keeps both safe to
// use as file names and inside nft comments and scripts.
const identifierPattern = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const maxIdentifierLength = 255;
const maxInterfaceNameLength = 15;

export function isValidIdentifier(value: string): boolean {
  return value.length <= maxIdentifierLength && identifierPattern.test(value);
}

export function validateContainerId(id: string): void {
  if (id === '') throw new CniError(ErrorCode.InvalidEnvironment, 'CNI_CONTAINERID is empty');
  if (!isValidIdentifier(id)) {
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `invalid container ID "${id}": must start with a letter or digit and contain only letters, digits, "_", "." and "-" (at most ${maxIdentifierLength} characters)`,
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
      `invalid network name "${name}": must start with a letter or digit and contain only letters, digits, "_", "." and "-"`,
    );
  }
  return name;
}

export function interfaceNameProblem(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (name.length > maxInterfaceNameLength) return `is longer than ${maxInterfaceNameLength} characters`;
  if (name === '.' || name === '..') return 'may not be "." or ".."';
  if (/[/:\s]/.test(name)) return 'may not contain "/", ":" or whitespace';
  return undefined;
}

export function validateInterfaceName(name: string, what = 'CNI_IFNAME', code: number = ErrorCode.InvalidEnvironment): void {
  const problem = interfaceNameProblem(name);
  if (problem !== undefined) throw new CniError(code, `invalid interface name "${name}" in ${what}: it ${problem}`);
}
