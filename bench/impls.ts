import { referenceBin, trestleBin } from '../src/sandbox/sandbox.js';
import type { ConfList } from '../src/runtime/chain.js';
import type { BenchNode } from './node.js';
import { Runtime, type Json } from './runtime.js';

// The implementations compared (the reference; Trestle one-shot, with no daemon on its
// node's socket; Trestle with a daemon resident in its node), and the configurations.
export type Role = 'bridge' | 'ipam' | 'portmap';
export const roles: readonly Role[] = ['bridge', 'ipam', 'portmap'];

export interface Implementation {
  key: 'reference' | 'trestle' | 'daemon';
  // "trestle", or e.g. "trestle (portmap: reference)" when a part is not usable yet.
  label: string;
  // A `trestle daemon` serves the calls: each node of this implementation starts one.
  resident: boolean;
  types: Record<Role, string>;
  pluginDirs: string[];
}

export const reference: Implementation = {
  key: 'reference',
  label: 'reference',
  resident: false,
  types: { bridge: 'bridge', ipam: 'host-local', portmap: 'portmap' },
  pluginDirs: [referenceBin],
};

const trestleTypes: Record<Role, string> = { bridge: 'trestle-bridge', ipam: 'trestle-host-local', portmap: 'trestle-portmap' };
export const cniVersion = '1.0.0';

export function roleOf(implementation: Implementation, type: string): Role | undefined {
  return roles.find((role) => implementation.types[role] === type);
}

export function isTrestleType(type: string): boolean {
  return type.startsWith('trestle-');
}

async function answersVersion(runtime: Runtime, type: string): Promise<boolean> {
  try {
    const outcome = await runtime.invoke(type, 'VERSION', { cniVersion });
    const answer = JSON.parse(outcome.stdout) as { supportedVersions?: string[] };
    return outcome.status === 0 && answer.supportedVersions?.includes(cniVersion) === true;
  } catch {
    return false;
  }
}

// The "Trestle" side: the Trestle plugin for each wanted role that answers VERSION
// with the benchmark's version, the reference plugin for the others. That runs the
// harness on whatever part exists, and isolates one part on request (e.g. only
// trestle-host-local, delegated to by the reference bridge).
export async function trestleSide(wanted: readonly Role[], socket: string): Promise<{ implementation: Implementation; unusable: Role[] }> {
  const runtime = new Runtime([trestleBin], socket);
  const unusable: Role[] = [];
  for (const role of wanted) if (!(await answersVersion(runtime, trestleTypes[role]))) unusable.push(role);
  const ours = (role: Role) => wanted.includes(role) && !unusable.includes(role);
  const types = Object.fromEntries(roles.map((role) => [role, ours(role) ? trestleTypes[role] : reference.types[role]])) as Record<Role, string>;
  const replaced = roles.filter((role) => !ours(role));
  const label = replaced.length === 0 ? 'trestle' : `trestle (${replaced.map((role) => `${role}: reference`).join(', ')})`;
  return { implementation: { key: 'trestle', label, resident: false, types, pluginDirs: [trestleBin, referenceBin] }, unusable };
}

// The same executables with a daemon resident in the node.
export function residentSide(trestle: Implementation): Implementation {
  const replaced = trestle.label.replace(/^trestle ?/, '').replace(/^\((.*)\)$/, '; $1');
  return { ...trestle, key: 'daemon', label: `trestle (daemon${replaced})`, resident: true };
}

// a: bridge + host-local; b: + ipMasq; c: + portmap, one hostPort per container.
export type ConfigName = 'a' | 'b' | 'c';
export const configNames: readonly ConfigName[] = ['a', 'b', 'c'];
export const configTitles: Record<ConfigName, string> = { a: 'a: bridge + host-local', b: 'b: + ipMasq', c: 'c: + portmap' };

// Room for the growth section's thousand containers and then some.
const subnet = '10.88.0.0/16';

export function conflist(implementation: Implementation, config: ConfigName, node: BenchNode): ConfList {
  const { types } = implementation;
  // Trestle keeps firewall ownership files in stateDir (default /run/trestle): a
  // directory of the node's own keeps the benchmark off the machine's state.
  const state = (type: string): Json => (isTrestleType(type) ? { stateDir: node.stateDir } : {});
  const plugins: Json[] = [
    {
      type: types.bridge,
      bridge: 'bench0',
      isGateway: true,
      ipMasq: config !== 'a',
      ...state(types.bridge),
      ipam: { type: types.ipam, ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: node.sandbox.dataDir },
    },
  ];
  if (config === 'c') plugins.push({ type: types.portmap, capabilities: { portMappings: true }, snat: true, ...state(types.portmap) });
  return node.sandbox.conflist(plugins, cniVersion);
}

export function portMapping(hostPort: number): Record<string, unknown> {
  return { portMappings: [{ hostPort, containerPort: 80, protocol: 'tcp' }] };
}

export function runtimeFor(implementation: Implementation, node: BenchNode): Runtime {
  return new Runtime(implementation.pluginDirs, node.sandbox.socketPath, node.path, node);
}
