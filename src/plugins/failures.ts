import { CniError, ErrorCode } from '../cni/errors.js';
import { AttachmentGoneError, MissingRulesError, PortConflictError } from '../firewall/firewall.js';
import { HostError } from '../host/errors.js';
import { LockTimeoutError } from '../util/lock.js';

// Raises the CNI error for a failure of the host or firewall layers; anything else is
// raised unchanged.
export function hostFailure(error: unknown): never {
  if (error instanceof PortConflictError) throw new CniError(ErrorCode.HostPortConflict, error.message);
  if (error instanceof MissingRulesError) throw new CniError(ErrorCode.CheckFailed, error.message);
  if (error instanceof HostError) throw new CniError(ErrorCode.HostCommandFailed, error.message);
  if (error instanceof LockTimeoutError) throw new CniError(ErrorCode.TryAgainLater, `firewall state is busy: ${error.message}`);
  if (error instanceof AttachmentGoneError) throw new CniError(ErrorCode.TryAgainLater, error.message);
  throw error;
}
