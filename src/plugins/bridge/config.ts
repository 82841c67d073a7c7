import { checkKnownArgs } from '../../cni/args.js';
import { isJsonObject, type NetConf } from '../../cni/config.js';
import { CniError, ErrorCode } from '../../cni/errors.js';
import type { Invocation } from '../../cni/env.js';
import { validateDirectory, validateInterfaceName } from '../../cni/validate.js';
import { defaultStateDir } from '../../firewall/state.js';
import { isValidMac } from '../../host/links.js';
import { ipamArgKeys } from '../../ipam/args.js';

// What Kubernetes runtimes pass about the pod; recorded for `trestle ls` and `inspect`.
const kubernetesArgKeys = ['K8S_POD_NAMESPACE', 'K8S_POD_NAME', 'K8S_POD_UID', 'K8S_POD_INFRA_CONTAINER_ID'];
import { quote } from '../../util/quote.js';

export interface BridgeConfig {
  bridge: string;
  isGateway: boolean;
  isDefaultGateway: boolean;
  forceAddress: boolean;
  ipMasq: boolean;
  mtu?: number;
  hairpinMode: boolean;
  promiscMode: boolean;
  enableDad: boolean;
  disableContainerInterface: boolean;
  portIsolation: boolean;
  keepIPv6: boolean;
  vethQueues: number;
  mcastSnooping: boolean;
  mac?: string;
  stateDir: string;
}

export const defaultBridgeName = 'cni0';

// One TX and one RX queue per veth end unless asked. The kernel would allocate one per
// possible CPU and use only the first (its real count is 1 until `ethtool -L` raises
// it): creating a pair took ~150 us less with one (here, 2 possible CPUs; more on
// larger machines). More are for XDP set-ups that spread a container's traffic over
// queues. The kernel's own bound is 4096.
const defaultVethQueues = 1;
const maxVethQueues = 4096;

function invalid(message: string): CniError {
  return new CniError(ErrorCode.InvalidConfig, message);
}

// An integer key within [min, max]; undefined when absent.
function integerIn(raw: Record<string, unknown>, key: string, min: number, max: number): number | undefined {
  const value = raw[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw invalid(`"${key}" must be an integer from ${min} to ${max}`);
  return value;
}

function flag(raw: Record<string, unknown>, key: string): boolean {
  const value = raw[key];
  if (value === undefined || value === null) return false;
  if (typeof value !== 'boolean') throw invalid(`"${key}" must be true or false`);
  return value;
}

// Keys of the reference bridge that Trestle does not implement: refused by name,
// never silently ignored.
function rejectUnsupported(raw: Record<string, unknown>): void {
  const unsupported: string[] = [];
  if (raw['vlan'] !== undefined && raw['vlan'] !== 0) unsupported.push('vlan');
  if (Array.isArray(raw['vlanTrunk']) && raw['vlanTrunk'].length > 0) unsupported.push('vlanTrunk');
  if (raw['preserveDefaultVlan'] === true) unsupported.push('preserveDefaultVlan');
  if (raw['macspoofchk'] === true) unsupported.push('macspoofchk');
  if (raw['ipMasqBackend'] !== undefined && raw['ipMasqBackend'] !== 'nftables') unsupported.push(`ipMasqBackend ${quote(raw['ipMasqBackend'])} (only "nftables")`);
  if (unsupported.length > 0) {
    throw new CniError(ErrorCode.UnsupportedField, `trestle-bridge does not support ${unsupported.join(', ')}`);
  }
}

// The container MAC, from the three places runtimes put it (mac capability first).
function requestedMac(conf: NetConf, invocation: Invocation): string | undefined {
  const cni = conf.args['cni'];
  const candidates: Array<[string, unknown]> = [
    ['runtimeConfig.mac', conf.runtimeConfig['mac']],
    ['args.cni.mac', isJsonObject(cni) ? cni['mac'] : undefined],
    ['CNI_ARGS MAC', invocation.args.get('MAC')],
  ];
  for (const [where, value] of candidates) {
    if (value === undefined || value === '') continue;
    if (typeof value !== 'string' || !isValidMac(value)) throw invalid(`${where}: ${quote(value)} is not a unicast MAC address like 02:42:ac:11:00:02`);
    return value.toLowerCase();
  }
  return undefined;
}

export function parseBridgeConfig(conf: NetConf, invocation: Invocation): BridgeConfig {
  const raw = conf.raw;
  rejectUnsupported(raw);
  checkKnownArgs(invocation.args, [...ipamArgKeys, 'MAC', ...kubernetesArgKeys]);
  const bridge = raw['bridge'] ?? defaultBridgeName;
  if (typeof bridge !== 'string') throw invalid('"bridge" must be an interface name');
  validateInterfaceName(bridge, '"bridge"', ErrorCode.InvalidConfig);
  const isDefaultGateway = flag(raw, 'isDefaultGateway');
  const config: BridgeConfig = {
    bridge,
    // A default gateway must be a gateway, as in the reference plugin.
    isGateway: flag(raw, 'isGateway') || isDefaultGateway,
    isDefaultGateway,
    forceAddress: flag(raw, 'forceAddress'),
    ipMasq: flag(raw, 'ipMasq'),
    hairpinMode: flag(raw, 'hairpinMode'),
    promiscMode: flag(raw, 'promiscMode'),
    enableDad: flag(raw, 'enabledad'),
    disableContainerInterface: flag(raw, 'disableContainerInterface'),
    portIsolation: flag(raw, 'portIsolation'),
    keepIPv6: flag(raw, 'keepIPv6'),
    vethQueues: integerIn(raw, 'vethQueues', 1, maxVethQueues) ?? defaultVethQueues,
    // Off unless asked, on a bridge this plugin creates: with snooping on, every port
    // that comes up makes the kernel re-arm two multicast query timers on every port
    // of the bridge (bringing a port up took 389 us instead of 129 at 900 ports), and
    // with no querier on the bridge, as on a container bridge, the memberships it
    // learns expire after 260 s and the traffic floods all ports anyway.
    mcastSnooping: flag(raw, 'mcastSnooping'),
    stateDir: defaultStateDir,
  };
  // 0, as in the reference plugin, is no MTU.
  const mtu = raw['mtu'] === 0 ? undefined : integerIn(raw, 'mtu', 68, 65535);
  if (mtu !== undefined) config.mtu = mtu;
  const stateDir = raw['stateDir'];
  if (stateDir !== undefined) config.stateDir = validateDirectory(stateDir, '"stateDir"');
  const mac = requestedMac(conf, invocation);
  if (mac !== undefined) config.mac = mac;
  if (!conf.ipam) throw invalid('network configuration has no "ipam" section: trestle-bridge needs an IPAM plugin for addresses');
  return config;
}
