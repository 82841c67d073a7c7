import { runProgram } from '../util/exec.js';
import { HostError } from './errors.js';

// Applies a whole nft script as one transaction: the kernel takes all of it or none.
// With `dryRun`, the kernel validates the transaction and then discards it.
export async function runNftScript(script: string, options: { dryRun?: boolean } = {}): Promise<void> {
  const args = options.dryRun ? ['--check', '-f', '-'] : ['-f', '-'];
  const outcome = await runProgram('nft', args, { input: script });
  if (outcome.spawnError) throw new HostError(`cannot run nft: ${outcome.spawnError.message}`, outcome.spawnError.message);
  if (outcome.status !== 0) {
    const reason = outcome.stderr
      .split('\n')
      .filter((line) => /Error:/.test(line))
      .map((line) => line.replace(/^.*Error: /, ''))
      .join('; ');
    throw new HostError(`nft failed: ${reason || outcome.stderr.trim()}`, reason || outcome.stderr.trim(), /No such file or directory/.test(reason));
  }
}

export async function nftJson(args: readonly string[]): Promise<unknown> {
  const outcome = await runProgram('nft', ['-j', ...args]);
  if (outcome.spawnError) throw new HostError(`cannot run nft: ${outcome.spawnError.message}`, outcome.spawnError.message);
  if (outcome.status !== 0) {
    const reason = outcome.stderr.trim();
    throw new HostError(`nft ${args.join(' ')} failed: ${reason}`, reason, /No such file or directory/.test(reason));
  }
  return JSON.parse(outcome.stdout);
}
