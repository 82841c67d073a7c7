import { libc } from './libc.js';
import { nftables } from './nftables.js';

// koffi, libc and libnftables with its context, loaded now rather than by the first
// call that needs them (~7 ms of it, measured): for a resident process, before it
// serves. A node where they cannot load learns why now; each call then fails with the
// same error, as it would have anyway.
export function loadNativeLibraries(): string | undefined {
  try {
    libc();
    nftables();
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}
