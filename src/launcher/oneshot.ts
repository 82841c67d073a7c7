import { readFileSync } from 'node:fs';
import { writeAll } from '../util/output.js';
import { CniError, ErrorCode, toErrorJson } from '../cni/errors.js';
import { handleRequest, type Answer, type PluginSource } from '../cni/skel.js';
import { latestVersion } from '../cni/version.js';

function readStdin(): Buffer | CniError {
  try {
    return readFileSync(0);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EAGAIN' || code === 'EOF') return Buffer.alloc(0);
    return new CniError(ErrorCode.IoFailure, `cannot read the configuration from stdin: ${code ?? 'read failed'}`);
  }
}

// The executable's entry point: one invocation from this process's environment and
// stdin, answered on stdout (log lines on stderr) and by the exit status.
export async function runPlugin(source: PluginSource, program: string): Promise<never> {
  const stdin = readStdin();
  let answer: Answer;
  if (stdin instanceof CniError) {
    answer = { stdout: `${JSON.stringify(toErrorJson(stdin, latestVersion))}\n`, exitCode: 1, log: [] };
  } else {
    answer = await handleRequest(source, { environment: process.env, stdin });
  }
  for (const line of answer.log) writeAll(2, `${program}: ${line}\n`);
  if (answer.stdout !== '') writeAll(1, answer.stdout);
  process.exit(answer.exitCode);
}
