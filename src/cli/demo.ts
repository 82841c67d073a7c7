// `trestle demo` / `make demo`: Trestle's main job, shown end to end in a sandbox of
// network namespaces that it creates and removes. Plugins are driven exactly as a
// runtime drives them (env + stdin, through conf/10-trestle.conflist), and every
// step is checked, so the demo doubles as a smoke test.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
// Bundled in, so that an installed `trestle demo` shows the configuration it installed.
import defaultConflist from '../../conf/10-trestle.conflist' with { type: 'json' };
import type { ConfList, Json } from '../runtime/chain.js';
import { Sandbox, lan, trestleBin } from '../sandbox/sandbox.js';

const conflistName = 'conf/10-trestle.conflist';
const containerPage = 'Hello from container c1, served through a Trestle port mapping';

class StepFailed extends Error {}

const useColour = process.stdout.isTTY === true;
const paint = (code: string, text: string) => (useColour ? `\u001b[${code}m${text}\u001b[0m` : text);

function heading(text: string): void {
  process.stdout.write(`\n${paint('1', `== ${text}`)}\n`);
}

function show(text: string): void {
  for (const line of text.trimEnd().split('\n')) process.stdout.write(`   ${line}\n`);
}

function check(ok: boolean, what: string, detail = ''): void {
  process.stdout.write(`${ok ? paint('32', ' ✔') : paint('31', ' ✘')} ${what}${detail ? `: ${detail}` : ''}\n`);
  if (!ok) throw new StepFailed(what);
}

// The shipped conflist, with its state kept inside the sandbox so the demo leaves
// nothing on the machine.
function sandboxedConflist(sandbox: Sandbox): ConfList {
  const list = structuredClone(defaultConflist) as ConfList;
  for (const plugin of list.plugins) {
    plugin['stateDir'] = sandbox.stateDir;
    const ipam = plugin['ipam'] as Json | undefined;
    if (ipam) ipam['dataDir'] = sandbox.dataDir;
  }
  return list;
}

async function output(sandbox: Sandbox, namespace: string, file: string, args: string[]): Promise<string> {
  return String((await sandbox.exec(namespace, file, args, { reject: false })).stdout);
}

async function ping(sandbox: Sandbox, from: string, to: string): Promise<boolean> {
  return (await sandbox.exec(from, 'busybox', ['ping', '-c', '1', '-W', '2', to], { reject: false })).exitCode === 0;
}

async function fetch(sandbox: Sandbox, from: string, url: string): Promise<string | undefined> {
  // busybox 1.35's own wget -T crashes; `timeout` bounds it instead.
  for (let attempt = 0; attempt < 20; attempt++) {
    const outcome = await sandbox.exec(from, 'timeout', ['4', 'busybox', 'wget', '-q', '-O-', url], { reject: false });
    if (outcome.exitCode === 0) return String(outcome.stdout).trim();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return undefined;
}

function addressOf(result: Json): string {
  const ip = (result['ips'] as Array<{ address: string }> | undefined)?.[0];
  if (!ip) throw new StepFailed('ADD returned no address');
  return ip.address.split('/')[0] as string;
}

async function demonstrate(sandbox: Sandbox): Promise<void> {
  const list = sandboxedConflist(sandbox);
  const runner = sandbox.runner();
  heading(`Sandbox: node namespace ${sandbox.node}, LAN namespace ${sandbox.lanNs}`);
  await sandbox.addLan();
  show(`the node's uplink is ${lan.nodeAddress}/${lan.prefix}; the LAN host is ${lan.hostAddress} and has no route to the containers`);
  const c1 = await sandbox.addContainer();
  const c2 = await sandbox.addContainer();

  heading(`ADD: two containers on network "${list.name}" (${conflistName}, plugins from ${trestleBin})`);
  const portMappings = [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }];
  const c1Attachment = sandbox.attachment(c1, { capabilities: { portMappings } });
  const c2Attachment = sandbox.attachment(c2);
  const c1Result = runner.add(list, c1Attachment);
  const c2Result = runner.add(list, c2Attachment);
  const c1Address = addressOf(c1Result);
  const c2Address = addressOf(c2Result);
  const gateway = (c1Result['ips'] as Array<{ gateway?: string }>)[0]?.gateway ?? '';
  for (const [name, namespace, result] of [['c1', c1.name, c1Result], ['c2', c2.name, c2Result]] as const) {
    show(`${name} (${namespace}): eth0 ${(result['ips'] as Array<{ address: string }>)[0]?.address}`);
    show((await output(sandbox, namespace, 'ip', ['route'])).replace(/^/gm, '  route: '));
  }
  show(`the bridge on the node:\n${await output(sandbox, sandbox.node, 'ip', ['-br', 'addr', 'show', 'type', 'bridge'])}`);
  show(`c1 publishes node port 8080 -> its port 80`);
  runner.check(list, c1Attachment, c1Result);
  check(true, 'CHECK of c1 passes');

  heading('Traffic');
  sandbox.spawn(c1.name, 'busybox', ['httpd', '-f', '-p', '80', '-h', webRoot(sandbox)]);
  check(await ping(sandbox, c1.name, c2Address), `c1 -> c2 (${c2Address})`, 'ping over the bridge');
  check(await ping(sandbox, c1.name, gateway), `c1 -> gateway (${gateway})`, 'ping');
  const lanRoutes = await output(sandbox, sandbox.lanNs, 'ip', ['route']);
  check(!lanRoutes.includes('10.77.'), 'the LAN host has no route to 10.77.0.0/16');
  check(await ping(sandbox, c1.name, lan.hostAddress), `c1 -> LAN host (${lan.hostAddress})`, 'works only because the node masquerades');
  const page = await fetch(sandbox, sandbox.lanNs, `http://${lan.nodeAddress}:8080/`);
  check(page === containerPage, `LAN host -> ${lan.nodeAddress}:8080 -> c1:80`, page === undefined ? 'no answer' : `"${page}"`);
  const local = await fetch(sandbox, sandbox.node, 'http://127.0.0.1:8080/');
  check(local === containerPage, 'node -> 127.0.0.1:8080 -> c1:80');
  show(`the node's nftables ruleset (table inet trestle), in part:\n${(await output(sandbox, sandbox.node, 'nft', ['list', 'map', 'inet', 'trestle', 'hp_any4'])).trim()}`);

  heading('DEL: both containers');
  runner.del(list, c1Attachment, c1Result);
  runner.del(list, c2Attachment, c2Result);
  check(true, 'DEL of c1 and c2 succeeded');
  const links = await output(sandbox, sandbox.node, 'ip', ['-br', 'link']);
  show(links);
  check(!/veth/.test(links), 'no veth is left on the node');
  const ruleset = await output(sandbox, sandbox.node, 'nft', ['list', 'ruleset']);
  check(!ruleset.includes(c1Address) && !ruleset.includes(c2Address) && !/elements/.test(ruleset), 'no container address or element is left in the ruleset');
  const ipamFiles = readdirSync(join(sandbox.dataDir, list.name)).filter((name) => /^[0-9a-f.:]+$/.test(name));
  check(ipamFiles.length === 0, 'no address is left reserved in the IPAM store', ipamFiles.join(', '));
  const c1Addresses = await output(sandbox, c1.name, 'ip', ['-br', 'addr']);
  check(!c1Addresses.includes(c1Address), 'c1 has no address any more');
}

// The same chain one-shot (each plugin a Node process) and through `trestle daemon`
// (each plugin a native client forwarding to it), timed as a runtime would see it.
async function compareModes(sandbox: Sandbox): Promise<void> {
  const list = sandboxedConflist(sandbox);
  const runner = sandbox.runner();
  const portMappings = [{ hostPort: 8081, containerPort: 80, protocol: 'tcp' }];
  const timed = (work: () => unknown): number => {
    const started = performance.now();
    work();
    return performance.now() - started;
  };
  const cycle = async (label: string): Promise<string> => {
    const container = await sandbox.addContainer();
    const attachment = sandbox.attachment(container, { capabilities: { portMappings } });
    let result: Json = {};
    const add = timed(() => {
      result = runner.add(list, attachment);
    });
    const del = timed(() => runner.del(list, attachment, result));
    return `${label.padEnd(36)} ADD ${add.toFixed(1).padStart(6)} ms   DEL ${del.toFixed(1).padStart(6)} ms`;
  };
  heading('One-shot and resident mode: the same ADD and DEL (bridge + portmap), timed');
  show(await cycle('one-shot (no daemon: Node per call)'));
  await sandbox.startDaemon();
  show(`trestle daemon started in ${sandbox.node}, socket ${sandbox.socketPath}`);
  show(await cycle('resident (client -> trestle daemon)'));
  show(await cycle('resident, again'));
  const ruleset = await output(sandbox, sandbox.node, 'nft', ['list', 'ruleset']);
  check(!/elements/.test(ruleset), 'both modes left no element in the ruleset');
}

function webRoot(sandbox: Sandbox): string {
  const root = join(sandbox.dir, 'www');
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'index.html'), `${containerPage}\n`);
  return root;
}

export async function runDemo(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('trestle demo: needs root (it creates network namespaces)\n');
    return 1;
  }
  const sandbox = await Sandbox.create();
  try {
    await demonstrate(sandbox);
    await compareModes(sandbox);
    heading('Done: everything above was created and removed inside the sandbox.');
    return 0;
  } catch (error) {
    process.stdout.write(`\n${paint('31', 'demo failed:')} ${(error as Error).message}\n`);
    return 1;
  } finally {
    await sandbox.destroy();
  }
}
