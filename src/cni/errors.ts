// Well-known CNI error codes (SPEC "Well-known Error Codes"); 100+ are plugin specific.
export const ErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodingFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  LimitedConnectivity: 51,
  // Trestle's own codes.
  AddressExhausted: 100,
  AddressUnavailable: 101,
  HostPortConflict: 102,
  HostCommandFailed: 103,
  CheckFailed: 104,
  Internal: 999,
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

export class CniError extends Error {
  readonly code: number;
  readonly details: string | undefined;

  constructor(code: number, msg: string, details?: string) {
    super(msg);
    this.name = 'CniError';
    this.code = code;
    this.details = details;
  }
}

export interface ErrorJson {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

export function toErrorJson(error: CniError, cniVersion: string): ErrorJson {
  const json: ErrorJson = { cniVersion, code: error.code, msg: error.message };
  if (error.details !== undefined && error.details !== '') json.details = error.details;
  return json;
}
