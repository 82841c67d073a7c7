// `trestle daemon`: the resident service the plugin executables forward to, and
// `trestle daemon status`. The service is an accelerator: with none running, the
// executables do the same work one-shot.
import packageJson from '../../package.json' with { type: 'json' };
import { runningBundleDirectory } from '../daemon/build-id.js';
import { activatedSocket, AlreadyServedError } from '../daemon/listener.js';
import { Daemon } from '../daemon/server.js';
import { socketPath } from '../daemon/wire.js';

export { queryDaemon } from '../daemon/query.js';

function log(line: string): void {
  process.stderr.write(`trestled: ${line}\n`);
}

export async function runDaemon(): Promise<number> {
  const source = activatedSocket(process.env) ?? { kind: 'path' as const, path: socketPath(process.env) };
  const daemon = new Daemon({ source, bundleDir: runningBundleDirectory(), version: packageJson.version, log });
  try {
    await daemon.start();
  } catch (error) {
    log(error instanceof AlreadyServedError ? `${error.message}: not starting a second one` : `cannot listen: ${(error as Error).message}`);
    return 1;
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log(`${signal}: no new calls; finishing those in flight`);
      void daemon.stop().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  log('stopped');
  return 0;
}
