import { quote } from '../util/quote.js';
import { CniError, ErrorCode } from './errors.js';

export type CniArgs = ReadonlyMap<string, string>;

// CNI_ARGS is "K=V;K2=V2". Unknown keys are an error unless IgnoreUnknown is true,
// which is how the reference plugins read it.
export function parseCniArgs(raw: string | undefined): CniArgs {
  const args = new Map<string, string>();
  if (raw === undefined || raw === '') return args;
  for (const pair of raw.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CniError(ErrorCode.InvalidEnvironment, `invalid CNI_ARGS pair ${quote(pair)}: expected KEY=VALUE`);
    args.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return args;
}

export function checkKnownArgs(args: CniArgs, known: readonly string[]): void {
  const ignoreUnknown = /^(1|true)$/i.test(args.get('IgnoreUnknown') ?? '');
  if (ignoreUnknown) return;
  const allowed = new Set([...known, 'IgnoreUnknown']);
  for (const key of args.keys()) {
    if (!allowed.has(key)) {
      throw new CniError(ErrorCode.InvalidEnvironment, `unknown CNI_ARGS key ${quote(key)} (set IgnoreUnknown=1 to ignore it)`);
    }
  }
}
