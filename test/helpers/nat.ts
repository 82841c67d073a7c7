import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Attachment, ConfList } from '../../src/runtime/chain.js';
import { referenceBin, trestleBin, type Sandbox } from '../../src/sandbox/sandbox.js';

// bridge (+ipMasq) + portmap, as conf/10-trestle.conflist, with this sandbox's state.
export function natPlugins(sandbox: Sandbox, options: { dualStack?: boolean; portmap?: boolean } = {}): Array<Record<string, unknown>> {
  const ranges: unknown[] = [[{ subnet: '10.77.0.0/16' }]];
  if (options.dualStack) ranges.push([{ subnet: 'fd77::/64' }]);
  const plugins: Array<Record<string, unknown>> = [
    {
      type: 'trestle-bridge',
      bridge: 'trestle0',
      isDefaultGateway: true,
      ipMasq: true,
      hairpinMode: true,
      stateDir: sandbox.stateDir,
      ipam: { type: 'trestle-host-local', dataDir: sandbox.dataDir, ranges },
    },
  ];
  if (options.portmap !== false) plugins.push({ type: 'trestle-portmap', capabilities: { portMappings: true }, stateDir: sandbox.stateDir });
  return plugins;
}

// Fetches a URL from inside a namespace with busybox wget (its own -T crashes on
// Debian's busybox 1.35, so `timeout` bounds it); returns the body or undefined.
export async function fetchIn(sandbox: Sandbox, namespace: string, url: string): Promise<string | undefined> {
  const outcome = await sandbox.exec(namespace, 'timeout', ['4', 'busybox', 'wget', '-q', '-O-', url], { reject: false });
  return outcome.exitCode === 0 ? String(outcome.stdout) : undefined;
}

export async function waitForHttp(sandbox: Sandbox, namespace: string, url: string): Promise<void> {
  for (let attempt = 0; attempt < 40; attempt++) {
    if ((await fetchIn(sandbox, namespace, url)) !== undefined) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no answer from ${url} in ${namespace}`);
}

// A document root with a page, and a CGI script answering the client's address.
export function webRoot(sandbox: Sandbox, name: string, page: string): string {
  const root = join(sandbox.dir, name);
  mkdirSync(join(root, 'cgi-bin'), { recursive: true });
  writeFileSync(join(root, 'index.html'), page);
  writeFileSync(join(root, 'cgi-bin', 'peer'), '#!/bin/busybox sh\necho "Content-Type: text/plain"\necho\necho "$REMOTE_ADDR"\n');
  chmodSync(join(root, 'cgi-bin', 'peer'), 0o755);
  return root;
}

const udpEchoServer = `
const socket = require('node:dgram').createSocket({ type: process.argv[1].includes(':') ? 'udp6' : 'udp4' });
socket.on('message', (message, peer) => socket.send(Buffer.from('echo:' + message), peer.port, peer.address));
socket.bind(Number(process.argv[2]), process.argv[1]);
`;

const udpClient = `
const [address, port] = [process.argv[1], Number(process.argv[2])];
const socket = require('node:dgram').createSocket(address.includes(':') ? 'udp6' : 'udp4');
const timer = setTimeout(() => { process.exitCode = 1; socket.close(); }, 2000);
socket.on('message', (message) => { process.stdout.write(String(message)); clearTimeout(timer); socket.close(); });
socket.send('ping', port, address);
`;

export function startUdpEcho(sandbox: Sandbox, namespace: string, bindAddress: string, port: number): void {
  sandbox.spawn(namespace, process.execPath, ['-e', udpEchoServer, bindAddress, String(port)]);
}

export async function udpRoundTrip(sandbox: Sandbox, namespace: string, address: string, port: number): Promise<string | undefined> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const outcome = await sandbox.exec(namespace, process.execPath, ['-e', udpClient, address, String(port)], { reject: false });
    if (outcome.exitCode === 0) return String(outcome.stdout);
  }
  return undefined;
}

export async function ruleset(sandbox: Sandbox): Promise<string> {
  return String((await sandbox.inNode('nft', ['list', 'ruleset'])).stdout);
}

// The elements currently in one of Trestle's sets or maps, as nft prints them.
export async function setElements(sandbox: Sandbox, kind: 'set' | 'map', name: string): Promise<string[]> {
  const outcome = await sandbox.inNode('nft', ['-j', 'list', kind, 'inet', 'trestle', name], { reject: false });
  if (outcome.exitCode !== 0) return [];
  const parsed = JSON.parse(String(outcome.stdout)) as { nftables: Array<Record<string, { elem?: unknown[] }>> };
  const entry = parsed.nftables.find((item) => item[kind] !== undefined);
  return (entry?.[kind]?.elem ?? []).map((element) => JSON.stringify(element));
}

async function invokeConcurrently(sandbox: Sandbox, list: ConfList, plugin: Record<string, unknown>, command: string, attachment: Attachment, prevResult?: unknown): Promise<Record<string, unknown> | undefined> {
  const config: Record<string, unknown> = { ...plugin, cniVersion: list.cniVersion, name: list.name };
  if (plugin['capabilities'] && attachment.capabilities) config['runtimeConfig'] = attachment.capabilities;
  if (prevResult !== undefined) config['prevResult'] = prevResult;
  const outcome = await execa('nsenter', [`--net=${sandbox.nodePath}`, `${trestleBin}/${plugin['type'] as string}`], {
    input: JSON.stringify(config),
    reject: false,
    env: { CNI_COMMAND: command, CNI_CONTAINERID: attachment.containerId, CNI_NETNS: attachment.netns, CNI_IFNAME: attachment.ifname, CNI_PATH: `${trestleBin}:${referenceBin}`, ...sandbox.pluginEnvironment() },
  });
  if (outcome.exitCode !== 0) throw new Error(`${plugin['type'] as string} ${command}: ${String(outcome.stdout)}${String(outcome.stderr)}`);
  const text = String(outcome.stdout).trim();
  return text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>);
}

// The chain's ADD as an asynchronous process per plugin, so that many containers
// can be added at once (ChainRunner runs one process at a time).
export async function addChainConcurrently(sandbox: Sandbox, list: ConfList, attachment: Attachment): Promise<Record<string, unknown>> {
  let result: Record<string, unknown> | undefined;
  for (const plugin of list.plugins) result = await invokeConcurrently(sandbox, list, plugin, 'ADD', attachment, result);
  return result ?? {};
}

export async function delChainConcurrently(sandbox: Sandbox, list: ConfList, attachment: Attachment): Promise<void> {
  for (const plugin of [...list.plugins].reverse()) await invokeConcurrently(sandbox, list, plugin, 'DEL', attachment);
}
