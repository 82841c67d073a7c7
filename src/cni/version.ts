import { quote } from '../util/quote.js';
import { CniError, ErrorCode } from './errors.js';

export const supportedVersions = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const latestVersion = '1.1.0';
// A configuration without cniVersion predates the field: the reference treats it as 0.1.0.
export const implicitVersion = '0.1.0';

export function parseVersion(version: string): [number, number, number] {
  const match = /^(\d+)\.(\d+)\.(\d+)$/.exec(version);
  if (!match) throw new CniError(ErrorCode.IncompatibleVersion, `invalid cniVersion ${quote(version)}: expected MAJOR.MINOR.PATCH`);
  return [Number(match[1]), Number(match[2]), Number(match[3])];
}

export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  for (let i = 0; i < 3; i++) {
    const diff = (pa[i] as number) - (pb[i] as number);
    if (diff !== 0) return diff;
  }
  return 0;
}

export function versionAtLeast(version: string, minimum: string): boolean {
  return compareVersions(version, minimum) >= 0;
}

export function requireSupportedVersion(version: string): void {
  parseVersion(version);
  if (!(supportedVersions as readonly string[]).includes(version)) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `incompatible CNI version: the configuration asks for ${quote(version)}, this plugin supports ${supportedVersions.join(', ')}`,
    );
  }
}

export interface VersionInfo {
  cniVersion: string;
  supportedVersions: string[];
}

export function versionInfo(requested: string | undefined): VersionInfo {
  const answerVersion = requested !== undefined && (supportedVersions as readonly string[]).includes(requested) ? requested : latestVersion;
  return { cniVersion: answerVersion, supportedVersions: [...supportedVersions] };
}
