import { CniError, ErrorCode } from './errors.js';
import { parseResult, type Dns, type Result } from './result.js';
import { validateNetworkName } from './validate.js';
import { implicitVersion, requireSupportedVersion } from './version.js';

export type JsonObject = Record<string, unknown>;

export interface Attachment {
  containerId: string;
  ifname: string;
}

// The keys every plugin configuration shares; plugin-specific keys stay in `raw`.
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  raw: JsonObject;
  // The exact bytes the runtime sent, for delegating to another plugin unchanged.
  bytes: Buffer;
  runtimeConfig: JsonObject;
  args: JsonObject;
  ipam?: JsonObject & { type: string };
  dns?: Dns;
  prevResult?: Result;
  validAttachments?: Attachment[];
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function parseJsonObject(bytes: Buffer, what: string): JsonObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new CniError(ErrorCode.DecodingFailure, `cannot decode ${what}: ${(error as Error).message}`);
  }
  if (!isJsonObject(parsed)) throw new CniError(ErrorCode.DecodingFailure, `cannot decode ${what}: expected a JSON object`);
  return parsed;
}

// The version in a configuration, read before anything else so that errors about the
// rest of the configuration are reported in the version the runtime speaks.
export function configVersion(raw: JsonObject): string {
  const version = raw['cniVersion'];
  if (version === undefined || version === '') return implicitVersion;
  if (typeof version !== 'string') throw new CniError(ErrorCode.InvalidConfig, '"cniVersion" must be a string');
  return version;
}

function parseAttachments(value: unknown): Attachment[] {
  if (!Array.isArray(value)) throw new CniError(ErrorCode.InvalidConfig, '"cni.dev/valid-attachments" must be a list');
  return value.map((entry, i) => {
    if (!isJsonObject(entry) || typeof entry['containerID'] !== 'string' || typeof entry['ifname'] !== 'string') {
      throw new CniError(ErrorCode.InvalidConfig, `"cni.dev/valid-attachments"[${i}] must have string "containerID" and "ifname"`);
    }
    return { containerId: entry['containerID'], ifname: entry['ifname'] };
  });
}

export function parseNetConf(bytes: Buffer): NetConf {
  const raw = parseJsonObject(bytes, 'network configuration');
  const cniVersion = configVersion(raw);
  requireSupportedVersion(cniVersion);
  const name = validateNetworkName(raw['name']);
  const type = raw['type'];
  if (typeof type !== 'string' || type === '') throw new CniError(ErrorCode.InvalidConfig, 'network configuration has no "type"');
  const conf: NetConf = { cniVersion, name, type, raw, bytes, runtimeConfig: {}, args: {} };
  for (const key of ['runtimeConfig', 'args'] as const) {
    const value = raw[key];
    if (value === undefined || value === null) continue;
    if (!isJsonObject(value)) throw new CniError(ErrorCode.InvalidConfig, `"${key}" must be an object`);
    conf[key] = value;
  }
  const ipam = raw['ipam'];
  if (ipam !== undefined && ipam !== null) {
    if (!isJsonObject(ipam)) throw new CniError(ErrorCode.InvalidConfig, '"ipam" must be an object');
    if (typeof ipam['type'] !== 'string' || ipam['type'] === '') throw new CniError(ErrorCode.InvalidConfig, '"ipam" has no "type"');
    conf.ipam = ipam as JsonObject & { type: string };
  }
  if (raw['dns'] !== undefined && raw['dns'] !== null) {
    const decoded = parseResult({ dns: raw['dns'] });
    if (decoded.dns) conf.dns = decoded.dns;
  }
  if (raw['prevResult'] !== undefined && raw['prevResult'] !== null) {
    try {
      conf.prevResult = parseResult(raw['prevResult']);
    } catch (error) {
      throw new CniError(ErrorCode.DecodingFailure, `cannot decode prevResult: ${(error as Error).message}`);
    }
  }
  if (raw['cni.dev/valid-attachments'] !== undefined) conf.validAttachments = parseAttachments(raw['cni.dev/valid-attachments']);
  return conf;
}

// A key as Go's encoding/json finds it: the exact name first, then any spelling that
// differs only in case. Runtimes built on go-cni send capability values from Go
// structs without JSON tags ({"HostPort": 8080, "ContainerPort": 80, ...}); the
// reference plugins, being Go, read them, so we must too.
export function goField(object: JsonObject, key: string): unknown {
  if (key in object) return object[key];
  const folded = key.toLowerCase();
  for (const [candidate, value] of Object.entries(object)) if (candidate.toLowerCase() === folded) return value;
  return undefined;
}
