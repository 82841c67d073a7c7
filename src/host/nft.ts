import { HostError } from './errors.js';
import { nftables } from './native/nftables.js';

function reasonOf(errors: string): string {
  const reason = errors
    .split('\n')
    .filter((line) => /Error:/.test(line))
    .map((line) => line.replace(/^.*Error: /, ''))
    .join('; ');
  return reason || errors.trim() || 'failed';
}

// Applies a whole nft script as one transaction: the kernel takes all of it or none.
// With `dryRun`, the kernel validates the transaction and then discards it.
export async function runNftScript(script: string, options: { dryRun?: boolean } = {}): Promise<void> {
  const outcome = nftables().run(script, { json: false, dryRun: options.dryRun ?? false });
  if (!outcome.ok) {
    const reason = reasonOf(outcome.errors);
    throw new HostError(`nft failed: ${reason}`, reason, /No such file or directory/.test(reason));
  }
}

// A listing command ("list table inet trestle") answered as nft's JSON.
export async function nftJson(command: readonly string[]): Promise<unknown> {
  const outcome = nftables().run(command.join(' '), { json: true, dryRun: false });
  if (!outcome.ok) {
    const reason = reasonOf(outcome.errors);
    throw new HostError(`nft ${command.join(' ')} failed: ${reason}`, reason, /No such file or directory/.test(reason));
  }
  return JSON.parse(outcome.output);
}

// Why nftables cannot be used on this node, if it cannot (for STATUS).
export function nftablesProblem(): string | undefined {
  try {
    nftables();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}
