// The fuzz worker: one Node process inside the sandbox's node namespace that runs many
// CNI calls through `handleRequest`, the path the executables take, without paying a
// process start per case. It also reads the node's state, since /proc/sys/net shows
// the namespace of whoever reads it. One JSON request per line on stdin, one JSON
// answer per line on stdout, strictly in turn: the parent times every request.
import { createInterface } from 'node:readline';
import { handleRequest, type PluginSource } from '../../../src/cni/skel.js';
import { bridgePlugin } from '../../../src/plugins/bridge/plugin.js';
import { hostLocalPlugin } from '../../../src/plugins/host-local/plugin.js';
import { portmapPlugin } from '../../../src/plugins/portmap/plugin.js';
import { readNodeState, restoreNodeState, type NodeState, type StatePaths } from './node-state.js';

export type WorkerRequest =
  | { op: 'run'; plugin: string; environment: Record<string, string>; stdin: string }
  | { op: 'snapshot'; paths: StatePaths }
  | { op: 'restore'; paths: StatePaths; baseline: NodeState };

export interface RunReply {
  stdout: string;
  exitCode: number;
  log: string[];
}

const plugins: Record<string, PluginSource> = {
  'trestle-bridge': bridgePlugin,
  'trestle-host-local': hostLocalPlugin,
  'trestle-portmap': portmapPlugin,
};

async function answer(request: WorkerRequest): Promise<unknown> {
  switch (request.op) {
    case 'run': {
      const source = plugins[request.plugin];
      if (source === undefined) throw new Error(`unknown plugin ${request.plugin}`);
      // stdin travels as base64: a case may hold bytes that are not UTF-8.
      return handleRequest(source, { environment: request.environment, stdin: Buffer.from(request.stdin, 'base64') });
    }
    case 'snapshot':
      return readNodeState(request.paths);
    case 'restore':
      restoreNodeState(request.paths, request.baseline);
      return readNodeState(request.paths);
  }
}

export function serve(): void {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  let queue = Promise.resolve();
  lines.on('line', (line) => {
    queue = queue.then(async () => {
      let reply: unknown;
      try {
        reply = { ok: true, value: await answer(JSON.parse(line) as WorkerRequest) };
      } catch (error) {
        // A failure of the worker itself, not of a plugin: handleRequest never throws.
        reply = { ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) };
      }
      process.stdout.write(`${JSON.stringify(reply)}\n`);
    });
  });
  lines.on('close', () => void queue.then(() => process.exit(0)));
}
