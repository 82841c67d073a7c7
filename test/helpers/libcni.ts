// Builds and runs test/runtimes/libcni/main.go, a driver on libcni (the library inside
// containerd, CRI-O and podman), in a sandbox's node namespace: the plugins then see
// exactly the environment, stdin, capability injection, prevResult chaining and
// result parsing those runtimes give them.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { buildGoProgram, goToolchainProblem } from '../../src/sandbox/go-build.js';
import { referenceBin, repoRoot, trestleBin, type Sandbox } from '../../src/sandbox/sandbox.js';
import { toOutcome, type Outcome } from './bridge.js';

export type Json = Record<string, any>;

export const driverSource = join(repoRoot, 'test', 'runtimes', 'libcni', 'main.go');
export const exampleConflist = join(repoRoot, 'conf', 'examples', 'containerd-dualstack.conflist');
// Why the driver cannot be built here, or undefined when it can.
export const missingToolchain = goToolchainProblem;

export function buildDriver(): Promise<string> {
  return buildGoProgram(driverSource, 'trestle-libcni');
}

// The example conflist with this sandbox's IPAM store and firewall state, in the
// sandbox's directory; everything else as a runtime would read it from /etc/cni/net.d.
export function sandboxedConflist(sandbox: Sandbox, cniVersion: string): { path: string; list: Json } {
  const list = JSON.parse(readFileSync(exampleConflist, 'utf8')) as Json;
  list['cniVersion'] = cniVersion;
  for (const plugin of list['plugins'] as Json[]) {
    if (String(plugin['type']).startsWith('trestle-')) plugin['stateDir'] = sandbox.stateDir;
    if (plugin['ipam']) plugin['ipam'] = { ...plugin['ipam'], dataDir: sandbox.dataDir };
  }
  const path = join(sandbox.dir, `libcni-${cniVersion}.conflist`);
  writeFileSync(path, JSON.stringify(list, null, 2));
  return { path, list };
}

export function cacheDir(sandbox: Sandbox): string {
  return join(sandbox.dir, 'libcni-cache');
}

// Where libcni keeps an attachment's ADD result for CHECK and DEL.
export function cachedResultPath(sandbox: Sandbox, network: string, containerId: string, ifname = 'eth0'): string {
  return join(cacheDir(sandbox), 'results', `${network}-${containerId}-${ifname}`);
}

export interface DriverCall {
  containerId: string;
  netns: string;
  ifname?: string;
  capArgs?: Json;
  cniArgs?: string;
}

export type DriverOutcome = Outcome;

// One driver process in the node namespace, with PATH only: a runtime's plugins
// inherit little, and nothing of the test runner's environment should help them.
export async function runDriver(
  sandbox: Sandbox,
  driver: string,
  command: 'add' | 'check' | 'del' | 'validate',
  conflist: string,
  request?: DriverCall,
): Promise<DriverOutcome> {
  const args = ['-cni-path', `${trestleBin}:${referenceBin}`, '-cache-dir', cacheDir(sandbox)];
  if (request?.capArgs) args.push('-cap-args', JSON.stringify(request.capArgs));
  if (request?.cniArgs) args.push('-args', request.cniArgs);
  args.push(command, conflist);
  if (request) args.push(request.containerId, request.netns, request.ifname ?? 'eth0');
  const outcome = await execa('ip', ['netns', 'exec', sandbox.node, driver, ...args], {
    env: { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...sandbox.pluginEnvironment() },
    extendEnv: false,
    reject: false,
  });
  return toOutcome(outcome);
}

export function describeOutcome(outcome: DriverOutcome): string {
  return `exit ${outcome.exitCode}: ${outcome.stderr.trim() || outcome.stdout.trim().slice(0, 300)}`;
}
