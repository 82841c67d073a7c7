// Trestle under containerd 1.6 and its own CNI client: `ctr run --cni` reads the
// configuration that `make install` put in /etc/cni/net.d and runs the installed
// launchers from /opt/cni/bin (both mounted from the sandbox, see
// test/helpers/containerd.ts). Containers get an address from the network's subnet, a
// default route through the gateway, reach the gateway and each other, and when ctr
// deletes them (CNI DEL with no netns and no prevResult, the task already gone)
// nothing is left: no reservation, no veth, no nftables element, no firewall state.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Result, ResultPromise } from 'execa';
import ipaddr from 'ipaddr.js';
import t from 'tap';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { networkName, ping, reservations, veths } from '../helpers/bridge.js';
import { Containerd, missingContainerd, type Json } from '../helpers/containerd.js';
import { setElements } from '../helpers/nat.js';

const missing = await missingContainerd();
if (missing !== undefined) {
  // Loud: a skipped runtime test must not read as a pass in a CI log.
  process.stderr.write(`\n*** containerd runtime test SKIPPED: ${missing} ***\n\n`);
  t.plan(0, `containerd cannot run: ${missing}`);
} else {
  run();
}

function inSubnet(address: string, subnet: string): boolean {
  return ipaddr.isValid(address) && ipaddr.parse(address).match(ipaddr.parseCIDR(subnet));
}

function describe(outcome: Result): string {
  return `exit ${String(outcome.exitCode)}: ${String(outcome.stdout).trim()} ${String(outcome.stderr).trim()}`.trim();
}

function addressIn(output: string): string | undefined {
  return /inet (\d+\.\d+\.\d+\.\d+)\/24 /.exec(output)?.[1];
}

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// Files under the plugins' stateDir: the firewall's per-container records.
function stateFiles(dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true, encoding: 'utf8' });
  } catch {
    return [];
  }
}

// A foreground `ctr run` that failed before its task started would leave the test
// waiting for a RUNNING task that never comes; its own error says more.
async function waitUntilRunning(containerd: Containerd, name: string, ctrRun: ResultPromise): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (ctrRun.exitCode !== null) {
      const outcome = await ctrRun;
      throw new Error(`ctr run ${name} ended before its task ran: ${describe(outcome as Result)}`);
    }
    if ((await containerd.taskStatus(name)) === 'RUNNING') return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`task ${name} never ran; containerd log: ${containerd.log().slice(-2000)}`);
}

function run(): void {
  t.test('ctr run --cni: an address from the subnet, the gateway and a neighbour reachable, nothing left after DEL', async (t) => {
    const sandbox = await Sandbox.create();
    const containerd = new Containerd(sandbox);
    // One teardown, so that containerd and its shims are gone before the sandbox
    // removes the namespaces and the directory they use.
    t.teardown(async () => {
      try {
        await containerd.stop();
      } finally {
        await sandbox.destroy();
      }
    });

    await containerd.install();
    const third = Number.parseInt(sandbox.id.slice(0, 2), 16);
    const subnet = `10.192.${third}.0/24`;
    const gateway = `10.192.${third}.1`;
    const bridge = `trctr-${sandbox.id}`;
    const list = containerd.readConflist();
    // The installed conflist as it is: its cniVersion (1.0.0) is what containerd 1.6's
    // libcni can parse; it ignores cniVersions, where 1.1.0 is offered to newer ones.
    t.equal(list['cniVersion'], '1.0.0', 'the installed conflist speaks 1.0.0 to libcni 1.1');
    list['name'] = networkName(sandbox);
    const plugins = list['plugins'] as Json[];
    const bridgePlugin = plugins.find((plugin) => plugin['type'] === 'trestle-bridge');
    const portmapPlugin = plugins.find((plugin) => plugin['type'] === 'trestle-portmap');
    if (bridgePlugin === undefined || portmapPlugin === undefined) throw new Error(`unexpected installed conflist: ${JSON.stringify(list)}`);
    bridgePlugin['bridge'] = bridge;
    bridgePlugin['stateDir'] = sandbox.stateDir;
    bridgePlugin['ipam'] = { ...bridgePlugin['ipam'], dataDir: sandbox.dataDir, ranges: [[{ subnet, gateway }]] };
    portmapPlugin['stateDir'] = sandbox.stateDir;
    containerd.writeConflist(list);
    containerd.makeRootfs();
    await containerd.start();
    const fullId = (name: string) => `${containerd.namespace}-${name}`;

    const long = containerd.spawnRun('long', ['/bin/busybox', 'sleep', '600']);
    await waitUntilRunning(containerd, 'long', long);

    const shown = await containerd.exec('long', 'addr', ['/bin/busybox', 'ip', '-4', '-o', 'addr', 'show', 'eth0']);
    t.equal(shown.exitCode, 0, `ip addr in the container: ${describe(shown)}`);
    const longAddress = addressIn(String(shown.stdout));
    t.ok(longAddress !== undefined && inSubnet(longAddress, subnet) && longAddress !== gateway, `eth0 has ${String(longAddress)}/24, from ${subnet}`);
    const routes = await containerd.exec('long', 'route', ['/bin/busybox', 'ip', '-4', 'route', 'show']);
    t.match(String(routes.stdout), new RegExp(`default via ${gateway.replace(/\./g, '\\.')} dev eth0`), 'the default route goes through the gateway');
    const pinged = await containerd.exec('long', 'ping', ['/bin/busybox', 'ping', '-c', '1', '-W', '2', gateway]);
    t.equal(pinged.exitCode, 0, `the container pings the gateway: ${describe(pinged)}`);
    t.ok(longAddress !== undefined && (await ping(sandbox, sandbox.node, longAddress)), 'the node pings the container');

    t.same(reservations(sandbox), [longAddress], 'one address reserved in the IPAM store');
    t.equal(readFileSync(join(sandbox.dataDir, networkName(sandbox), String(longAddress)), 'utf8'), `${fullId('long')}\r\neth0`, "the reservation names ctr's container ID and eth0");
    const bridged = JSON.parse(String((await sandbox.inNode('ip', ['-j', 'link', 'show', 'master', bridge])).stdout)) as Array<{ ifname: string }>;
    t.equal(bridged.length, 1, `one veth on ${bridge} in the node namespace`);
    t.ok((await setElements(sandbox, 'set', 'masq4')).some((element) => element.includes(String(longAddress))), 'the container is masqueraded');

    // A second container, run to completion: its own output is the proof, and ctr
    // deletes its network as soon as it exits.
    const script = ['/bin/busybox ip -4 -o addr show eth0', `/bin/busybox ping -c 1 -W 2 ${gateway}`, `/bin/busybox ping -c 1 -W 2 ${String(longAddress)}`].join(' && ');
    const short = await within(containerd.run('short', ['/bin/busybox', 'sh', '-c', script]), 30_000, 'ctr run short');
    t.equal(short.exitCode, 0, `the second container pings the gateway and the first one: ${describe(short)}`);
    const shortAddress = addressIn(String(short.stdout));
    t.ok(shortAddress !== undefined && inSubnet(shortAddress, subnet) && shortAddress !== longAddress && shortAddress !== gateway, `the second container has its own address, ${String(shortAddress)}`);
    t.equal(String(short.stdout).match(/1 packets received/g)?.length, 2, 'both pings were answered');
    t.same(reservations(sandbox), [longAddress], "once it exited, only the first container's address is reserved");
    t.same(await containerd.listIds('containers'), ['long'], 'ctr run --rm removed the second container');

    const killed = await containerd.ctr(['task', 'kill', '--signal', 'SIGKILL', 'long']);
    t.equal(killed.exitCode, 0, `ctr task kill: ${describe(killed)}`);
    const ended = await within(long, 30_000, 'ctr run long after its task was killed');
    t.equal(ended.exitCode, 137, `ctr run long returns the task's status (SIGKILL): ${describe(ended as Result)}`);

    t.same(await containerd.listIds('tasks'), [], 'no task left');
    t.same(await containerd.listIds('containers'), [], 'no container left');
    t.same(reservations(sandbox), [], 'no address reserved');
    t.same(await veths(sandbox), [], 'no veth in the node namespace');
    for (const name of ['masq4', 'masqskip4', 'hairpindst4', 'hairpinnet4'] as const) t.same(await setElements(sandbox, 'set', name), [], `no element in ${name}`);
    for (const name of ['hp_any4', 'hp_addr4'] as const) t.same(await setElements(sandbox, 'map', name), [], `no element in ${name}`);
    t.same(
      stateFiles(sandbox.stateDir).filter((file) => file.includes(fullId('long')) || file.includes(fullId('short'))),
      [],
      'no firewall state for either container',
    );
    t.same(stateFiles(join(containerd.cacheDir, 'results')), [], "libcni's result cache is empty: ctr ran DEL for both");
  });
}
