import { HostError } from '../errors.js';
import { koffi } from './koffi.js';
import { libc } from './libc.js';

// libnftables (nftables' own library, what `nft` runs): the same scripts and JSON as
// the command, without starting a process.
const library = 'libnftables.so.1';
const jsonOutput = 1 << 4;

interface Context {
  run(script: string, options: { json: boolean; dryRun: boolean }): { ok: boolean; output: string; errors: string };
}

let context: Context | undefined;

// One context for the life of the process: it keeps its cache of the ruleset, which
// libnftables revalidates against the kernel's generation on every command.
export function nftables(): Context {
  if (context) return context;
  const ffi = koffi();
  let lib;
  try {
    lib = ffi.load(library);
  } catch (error) {
    throw new HostError(`cannot load ${library} (install nftables): ${(error as Error).message}`, (error as Error).message);
  }
  const create = lib.func('void *nft_ctx_new(uint32_t)');
  const bufferOutput = lib.func('int nft_ctx_buffer_output(void *)');
  const bufferErrors = lib.func('int nft_ctx_buffer_error(void *)');
  const setFlags = lib.func('void nft_ctx_output_set_flags(void *, uint32_t)');
  const setDryRun = lib.func('void nft_ctx_set_dry_run(void *, bool)');
  const runBuffer = lib.func('int nft_run_cmd_from_buffer(void *, const char *)');
  const output = lib.func('const char *nft_ctx_get_output_buffer(void *)');
  const errors = lib.func('const char *nft_ctx_get_error_buffer(void *)');
  const handle = create(0);
  if (handle === null) throw new HostError('cannot create an nftables context', 'nft_ctx_new failed');
  bufferOutput(handle);
  bufferErrors(handle);
  context = {
    run(script, options) {
      setFlags(handle, options.json ? jsonOutput : 0);
      setDryRun(handle, options.dryRun);
      const status = libc().withSignalsHeld(() => runBuffer(handle, script) as number);
      // Reading a buffer also empties it for the next command.
      return { ok: status === 0, output: (output(handle) as string | null) ?? '', errors: (errors(handle) as string | null) ?? '' };
    },
  };
  return context;
}
