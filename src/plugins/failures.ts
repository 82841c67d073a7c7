import { CniError, ErrorCode } from '../cni/errors.js';
import { AttachmentGoneError, MissingRulesError, PortConflictError } from '../firewall/firewall.js';
import { HostError } from '../host/errors.js';
import { LockTimeoutError } from '../util/lock.js';

// The CNI error for a failure of the host or firewall layers; anything else is
// raised unchanged.
export function asPluginError(error: unknown): unknown {
  if (error instanceof PortConflictError) return new CniError(ErrorCode.HostPortConflict, error.message);
  if (error instanceof MissingRulesError) return new CniError(ErrorCode.CheckFailed, error.message);
  if (error instanceof HostError) return new CniError(ErrorCode.HostCommandFailed, error.message);
  if (error instanceof LockTimeoutError) return new CniError(ErrorCode.TryAgainLater, `firewall state is busy: ${error.message}`);
  if (error instanceof AttachmentGoneError) return new CniError(ErrorCode.TryAgainLater, error.message);
  return error;
}

export function hostFailure(error: unknown): never {
  throw asPluginError(error);
}
