// `trestle install-cni`: what the init container of conf/kubernetes/trestle.yaml runs
// to put Trestle on its node. It copies the executables of the image (the single
// executable `trestle`, the native client, the build id) into the node's CNI bin
// directory and writes a conflist for the node's pod CIDRs into its CNI conf
// directory. Every file is written under a temporary name and renamed into place, so a
// plugin running now keeps its old inode (never "Text file busy") and the runtime never
// reads half a file; files already identical are left alone, so a second run (the pod
// restarting) changes nothing.
import { chmodSync, closeSync, copyFileSync, lstatSync, mkdirSync, openSync, readFileSync, readSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { basename, dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { runningBundleDirectory } from '../daemon/build-id.js';
import { parseRange } from '../ipam/ranges.js';
import { formatPrefix, parsePrefix } from '../util/ip.js';
import { quote } from '../util/quote.js';
import { UsageError } from './ls.js';

// The host's directories as the DaemonSet mounts them into the init container.
export const defaultCniBinDir = '/host/opt/cni/bin';
export const defaultCniConfDir = '/host/etc/cni/net.d';
export const conflistName = '10-trestle.conflist';
const serviceAccountDir = '/var/run/secrets/kubernetes.io/serviceaccount';

export const installCniUsage = `  install-cni          put the plugins and a conflist on a Kubernetes node (a DaemonSet's init container)
                         --pod-cidr CIDR[,CIDR]  the node's pod CIDRs, IPv4 and/or IPv6 (default $POD_CIDR;
                                          without either, the spec.podCIDRs of node $NODE_NAME from the API server)
                         --cni-bin-dir DIR   (default ${defaultCniBinDir})
                         --cni-conf-dir DIR  (default ${defaultCniConfDir})
                         --source DIR        where trestle, trestle-client and trestle.build are (default: beside this trestle)
`;

const plugins = ['trestle-bridge', 'trestle-host-local', 'trestle-portmap'];

// The node's pod CIDRs as Kubernetes gives them ("10.244.1.0/24,fd00:10:244:1::/64"):
// at most one per family (a pod gets one address of each), each one a network a
// host-local range accepts. Returned in canonical form.
export function parsePodCidrs(text: string, from: string): string[] {
  const cidrs = text.split(',').map((part) => part.trim());
  const families = new Set<number>();
  return cidrs.map((cidr) => {
    const prefix = parsePrefix(cidr);
    if (prefix === undefined) throw new UsageError(`${from}: ${quote(cidr)} is not a CIDR such as 10.244.1.0/24 or fd00:10:244:1::/64`);
    try {
      parseRange({ subnet: cidr }, `${from}: pod CIDR`);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    if (families.has(prefix.family)) throw new UsageError(`${from}: more than one IPv${prefix.family} CIDR in ${quote(text)}; a node has at most one of each family`);
    families.add(prefix.family);
    return formatPrefix(prefix);
  });
}

// The network every pod of the node joins: conf/10-trestle.conflist with one range set
// per pod CIDR (so a dual-stack pod gets one address of each family). cniVersion 1.0.0
// because containerd 1.6/1.7 (kind, kubeadm) read no newer; cniVersions offers 1.1.0
// to runtimes that do.
export function trestleConflist(podCidrs: readonly string[]): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    cniVersions: ['0.3.1', '0.4.0', '1.0.0', '1.1.0'],
    name: 'trestle',
    plugins: [
      {
        type: 'trestle-bridge',
        bridge: 'trestle0',
        isGateway: true,
        isDefaultGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: { type: 'trestle-host-local', ranges: podCidrs.map((subnet) => [{ subnet }]) },
      },
      { type: 'trestle-portmap', capabilities: { portMappings: true }, snat: true },
    ],
  };
}

export interface InstallCniOptions {
  source: string;
  cniBinDir: string;
  cniConfDir: string;
  podCidrs: readonly string[];
}

export interface InstallOutcome {
  written: string[];
  unchanged: string[];
}

function place(path: string, write: (temporary: string) => void): void {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  rmSync(temporary, { force: true });
  try {
    write(temporary);
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}

// Compared by content in blocks: the single executable is ~100 MB, and an init
// container should not hold two copies of it in memory.
function sameFile(from: string, to: string, mode: number): boolean {
  let target;
  try {
    target = lstatSync(to);
  } catch {
    return false;
  }
  if (!target.isFile() || (target.mode & 0o7777) !== mode || target.size !== statSync(from).size) return false;
  const [a, b] = [openSync(from, 'r'), openSync(to, 'r')];
  try {
    const [bufferA, bufferB] = [Buffer.alloc(1 << 20), Buffer.alloc(1 << 20)];
    for (;;) {
      const read = readSync(a, bufferA);
      if (read === 0) return true;
      if (readSync(b, bufferB, 0, read, null) !== read || !bufferA.subarray(0, read).equals(bufferB.subarray(0, read))) return false;
    }
  } finally {
    closeSync(a);
    closeSync(b);
  }
}

function linkTarget(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

function readText(path: string): string | undefined {
  try {
    return lstatSync(path).isFile() ? readFileSync(path, 'utf8') : undefined;
  } catch {
    return undefined;
  }
}

function sourceFile(source: string, name: string): string {
  const path = join(source, name);
  try {
    if (statSync(path).isFile()) return path;
  } catch {
    // Reported below.
  }
  throw new Error(`${path} is missing: run install-cni from the Trestle image, or pass --source with trestle, trestle-client and trestle.build`);
}

// The executables first and the conflist last: the runtime starts using the network
// when the conflist appears, and by then every plugin it names is in place.
export function installCni(options: InstallCniOptions): InstallOutcome {
  const outcome: InstallOutcome = { written: [], unchanged: [] };
  const record = (path: string, changed: boolean) => (changed ? outcome.written : outcome.unchanged).push(path);
  const [trestle, client, build] = ['trestle', 'trestle-client', 'trestle.build'].map((name) => sourceFile(options.source, name)) as [string, string, string];
  for (const dir of [options.cniBinDir, options.cniConfDir]) mkdirSync(dir, { recursive: true });
  const copy = (from: string, name: string, mode: number) => {
    const to = join(options.cniBinDir, name);
    const changed = !sameFile(from, to, mode);
    if (changed) {
      place(to, (temporary) => {
        copyFileSync(from, temporary);
        chmodSync(temporary, mode);
      });
    }
    record(to, changed);
  };
  copy(trestle, 'trestle', 0o755);
  // The daemon and the client compare it with the build they run.
  copy(build, 'trestle.build', 0o644);
  // The single executable runs the plugin named by its first argument when invoked
  // as trestle-node: the one-shot fallback of the native client.
  const node = join(options.cniBinDir, 'trestle-node');
  const linked = linkTarget(node) === 'trestle';
  if (!linked) place(node, (temporary) => symlinkSync('trestle', temporary));
  record(node, !linked);
  for (const plugin of plugins) copy(client, plugin, 0o755);
  const conflist = join(options.cniConfDir, conflistName);
  const text = `${JSON.stringify(trestleConflist(options.podCidrs), null, 2)}\n`;
  const current = readText(conflist) === text && (lstatSync(conflist).mode & 0o7777) === 0o644;
  if (!current) place(conflist, (temporary) => writeFileSync(temporary, text, { mode: 0o644 }));
  record(conflist, !current);
  return outcome;
}

export interface ApiServer {
  host: string;
  port: number;
  // Tests reach a local server this way, with `host` still naming its certificate.
  socketPath?: string;
  // token and ca.crt, as Kubernetes mounts them into every pod.
  serviceAccountDir: string;
}

// The downward API cannot give a pod its node's spec.podCIDRs, so without --pod-cidr
// or POD_CIDR they are read from the API server with the pod's service account (which
// the DaemonSet's ClusterRole lets get nodes, and nothing else). The controller-manager
// sets them when it allocates node CIDRs (kind by default, kubeadm with --pod-network-cidr).
export function nodePodCidrs(nodeName: string, server: ApiServer): Promise<string> {
  const token = readFileSync(join(server.serviceAccountDir, 'token'), 'utf8').trim();
  const ca = readFileSync(join(server.serviceAccountDir, 'ca.crt'));
  return new Promise((resolve, reject) => {
    const call = request(
      {
        host: server.host,
        port: server.port,
        socketPath: server.socketPath,
        servername: server.host,
        path: `/api/v1/nodes/${encodeURIComponent(nodeName)}`,
        headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
        ca,
        timeout: 10_000,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          let body: { message?: unknown; spec?: { podCIDR?: unknown; podCIDRs?: unknown } } | undefined;
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
          } catch {
            body = undefined;
          }
          if (response.statusCode !== 200) {
            reject(new Error(`the API server answered ${response.statusCode} for node ${quote(nodeName)}: ${quote(body?.message ?? 'no message', 200)}`));
            return;
          }
          const spec = body?.spec;
          const cidrs = Array.isArray(spec?.podCIDRs) ? spec.podCIDRs : typeof spec?.podCIDR === 'string' ? [spec.podCIDR] : [];
          if (cidrs.length === 0 || !cidrs.every((cidr): cidr is string => typeof cidr === 'string' && cidr !== '')) {
            reject(new Error(`node ${quote(nodeName)} has no pod CIDR: allocate node CIDRs in the controller-manager (kubeadm init --pod-network-cidr), or pass --pod-cidr / POD_CIDR`));
            return;
          }
          resolve(cidrs.join(','));
        });
      },
    );
    call.on('timeout', () => call.destroy(new Error('no answer from the API server within 10 s')));
    call.on('error', (error) => reject(new Error(`cannot read node ${quote(nodeName)} from the API server: ${error.message}`)));
    call.end();
  });
}

async function podCidrText(flag: string | undefined, env: NodeJS.ProcessEnv): Promise<[string, string]> {
  if (flag !== undefined) return [flag, '--pod-cidr'];
  const fromEnv = env['POD_CIDR'];
  if (fromEnv !== undefined && fromEnv !== '') return [fromEnv, 'POD_CIDR'];
  const nodeName = env['NODE_NAME'];
  const host = env['KUBERNETES_SERVICE_HOST'];
  if (nodeName === undefined || nodeName === '' || host === undefined || host === '') {
    throw new UsageError('no pod CIDR: pass --pod-cidr or set POD_CIDR (in a pod, NODE_NAME lets install-cni read it from the API server)');
  }
  const port = Number(env['KUBERNETES_SERVICE_PORT'] ?? '443');
  return [await nodePodCidrs(nodeName, { host, port, serviceAccountDir }), `node ${nodeName}'s spec.podCIDRs`];
}

export async function runInstallCni(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      source: { type: 'string', default: runningBundleDirectory() },
      'cni-bin-dir': { type: 'string', default: defaultCniBinDir },
      'cni-conf-dir': { type: 'string', default: defaultCniConfDir },
      'pod-cidr': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`usage: trestle install-cni [options]\n\n${installCniUsage}`);
    return 0;
  }
  const [text, from] = await podCidrText(values['pod-cidr'], env);
  const podCidrs = parsePodCidrs(text, from);
  const outcome = installCni({ source: values.source, cniBinDir: values['cni-bin-dir'], cniConfDir: values['cni-conf-dir'], podCidrs });
  for (const path of outcome.written) process.stdout.write(`wrote ${path}\n`);
  const where = `${values['cni-bin-dir']} and ${values['cni-conf-dir']}`;
  process.stdout.write(
    outcome.written.length === 0
      ? `Trestle is already installed in ${where} for pod CIDR ${podCidrs.join(',')}: nothing changed\n`
      : `installed Trestle in ${where} for pod CIDR ${podCidrs.join(',')} (${outcome.written.length} written, ${outcome.unchanged.length} unchanged)\n`,
  );
  return 0;
}
