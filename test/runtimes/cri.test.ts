// The kubelet's path: pod sandboxes through containerd 1.6's CRI plugin, which reaches
// Trestle through go-cni exactly as on a Kubernetes node (CNI_ARGS with the pod's
// K8S_* names, netns at /var/run/netns/cni-…, go-cni's untagged port mappings, a DEL
// on every StopPodSandbox). The private containerd, its gRPC client and the locally
// built pause image are in test/helpers/cri.ts. The conflist is
// conf/examples/containerd-dualstack.conflist with the sandbox's state directories.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import ipaddr from 'ipaddr.js';
import t, { type Test } from 'tap';
import { lan, repoRoot, residentMode, Sandbox } from '../../src/sandbox/sandbox.js';
import { addressesOf, link, networkName, ping, reservations, veths } from '../helpers/bridge.js';
import { buildPauseImage, CriContainerd, missingCri, type Json, type PodSpec } from '../helpers/cri.js';
import { fetchIn, setElements, startUdpEcho, udpRoundTrip, waitForHttp, webRoot } from '../helpers/nat.js';

const missing = missingCri();
if (missing !== undefined) {
  // Loud: a skipped runtime test must not read as a pass in a CI log.
  process.stderr.write(`\n*** containerd CRI runtime test SKIPPED: ${missing} ***\n\n`);
  t.plan(0, `containerd's CRI cannot run: ${missing}`);
} else {
  run();
}

const subnet4 = '10.88.0.0/16';
const subnet6 = 'fd00:10:88::/64';
const burst = 30;

function inSubnet(address: string, subnet: string): boolean {
  return ipaddr.isValid(address) && ipaddr.parse(address).kind() === ipaddr.parseCIDR(subnet)[0].kind() && ipaddr.parse(address).match(ipaddr.parseCIDR(subnet));
}

function conflist(sandbox: Sandbox): Json {
  const list = JSON.parse(readFileSync(join(repoRoot, 'conf/examples/containerd-dualstack.conflist'), 'utf8')) as Json;
  list['name'] = networkName(sandbox);
  for (const plugin of list['plugins'] as Json[]) {
    plugin['stateDir'] = sandbox.stateDir;
    if (plugin['ipam'] !== undefined) plugin['ipam'] = { ...plugin['ipam'], dataDir: sandbox.dataDir };
  }
  return list;
}

function podSpec(sandbox: Sandbox, name: string, portMappings: PodSpec['portMappings'] = []): PodSpec {
  return { name, namespace: 'trestle-test', uid: `${sandbox.id}-${name}`, portMappings };
}

function stateFiles(dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true, encoding: 'utf8' });
  } catch {
    return [];
  }
}

function daemonLog(sandbox: Sandbox): string {
  try {
    return readFileSync(join(sandbox.dir, 'daemon.log'), 'utf8');
  } catch {
    return '';
  }
}

// As a kubelet does: a StopPodSandbox that failed is tried again (Trestle answers 11,
// "try again later", when its lock wait times out under a burst). Each failed attempt
// is recorded, so the test can say how often that happened.
async function stopAndRemove(cri: CriContainerd, id: string, retried: string[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await cri.client.stopPodSandbox(id);
      break;
    } catch (error) {
      if (attempt === 3) throw error;
      retried.push(String(error));
      await sleep(1_000);
    }
  }
  await cri.client.removePodSandbox(id);
}

async function pingSoon(sandbox: Sandbox, namespace: string, address: string): Promise<boolean> {
  // A new IPv6 address may still be in duplicate address detection.
  for (let attempt = 0; attempt < 5; attempt++) if (await ping(sandbox, namespace, address)) return true;
  return false;
}

function run(): void {
  t.test('containerd CRI: pod sandboxes on Trestle', async (t) => {
    const sandbox = await Sandbox.create();
    const cri = new CriContainerd(sandbox);
    // One teardown, so that containerd, its shims and the pods are gone before the
    // sandbox removes the namespaces and the directory they use.
    t.teardown(async () => {
      try {
        await cri.stop();
      } finally {
        await sandbox.destroy();
      }
    });

    let started = Date.now();
    await cri.install();
    cri.writeConflist(conflist(sandbox));
    await cri.start();
    await cri.importImage(buildPauseImage(cri.dir, cri.imageReference));
    await sandbox.addLan();
    const version = await cri.client.version();
    t.equal(version.runtimeName, 'containerd', `CRI answers: ${version.runtimeName} ${version.runtimeVersion}, API ${version.runtimeApiVersion}`);
    t.comment(`set-up (make install, containerd, image import): ${Date.now() - started} ms`);
    const baselineVeths = await veths(sandbox);

    // What no pod may leave once it is stopped and removed.
    const nothingLeft = async (t: Test, ids: readonly string[], namespaces: readonly string[]) => {
      const listed = (await cri.client.list()).map((pod) => pod.id);
      t.same(listed.filter((id) => ids.includes(id)), [], 'ListPodSandbox no longer lists the pods');
      t.same(reservations(sandbox), [], 'no address reserved');
      t.same(await veths(sandbox), baselineVeths, 'no pod veth in the node namespace');
      for (const family of ['4', '6']) {
        for (const name of ['masq', 'masqskip', 'hairpindst', 'hairpinnet']) t.same(await setElements(sandbox, 'set', `${name}${family}`), [], `no element in ${name}${family}`);
        for (const name of ['hp_any', 'hp_addr']) t.same(await setElements(sandbox, 'map', `${name}${family}`), [], `no element in ${name}${family}`);
      }
      t.same(
        stateFiles(sandbox.stateDir).filter((file) => ids.some((id) => file.includes(id))),
        [],
        'no firewall state for any pod',
      );
      t.same(
        namespaces.filter((path) => existsSync(path)),
        [],
        'no pod network namespace under /var/run/netns',
      );
      t.same(stateFiles(join(cri.cacheDir, 'results')), [], "go-cni's result cache is empty");
    };

    const web = { id: '', netns: '', ip4: '', ip6: '' };
    const peer = { id: '', netns: '', ip4: '', ip6: '' };

    await t.test('RunPodSandbox with tcp and udp host ports on the dual-stack conflist', async (t) => {
      started = Date.now();
      web.id = await cri.client.runPodSandbox(
        podSpec(sandbox, 'web', [
          { protocol: 'TCP', containerPort: 80, hostPort: 8080 },
          { protocol: 'UDP', containerPort: 53, hostPort: 5353 },
        ]),
      );
      t.comment(`RunPodSandbox with two host ports: ${Date.now() - started} ms`);
      peer.id = await cri.client.runPodSandbox(podSpec(sandbox, 'peer'));
      for (const pod of [web, peer]) {
        const { status, netns } = await cri.pod(pod.id);
        t.equal(status.state, 'SANDBOX_READY', `${status.metadata.name} is ready`);
        pod.netns = netns;
        pod.ip4 = status.network?.ip ?? '';
        pod.ip6 = status.network?.additionalIps[0]?.ip ?? '';
        t.match(netns, /^\/var\/run\/netns\/cni-[0-9a-f-]+$/, `${status.metadata.name}'s namespace is ${netns}`);
        t.ok(inSubnet(pod.ip4, subnet4), `PodSandboxStatus shows IPv4 ${pod.ip4}, from ${subnet4}`);
        t.ok(inSubnet(pod.ip6, subnet6), `and IPv6 ${pod.ip6}, from ${subnet6}`);
        const eth0 = await link(sandbox, basename(netns), 'eth0');
        t.ok(addressesOf(eth0, 4).includes(`${pod.ip4}/16`) && addressesOf(eth0, 6).includes(`${pod.ip6}/64`), 'eth0 in the pod namespace has both');
        for (const address of [pod.ip4, pod.ip6]) {
          t.equal(readFileSync(join(sandbox.dataDir, networkName(sandbox), address), 'utf8'), `${pod.id}\r\neth0`, `the reservation of ${address} names the pod sandbox ID`);
        }
      }
      t.same(reservations(sandbox).sort(), [web.ip4, web.ip6, peer.ip4, peer.ip6].sort(), 'Trestle reserved exactly those four addresses');
      const dnat4 = await setElements(sandbox, 'map', 'hp_any4');
      const dnat6 = await setElements(sandbox, 'map', 'hp_any6');
      t.equal(dnat4.filter((element) => element.includes(web.ip4)).length, 2, 'two IPv4 host ports lead to the web pod');
      t.equal(dnat6.filter((element) => element.includes(web.ip6)).length, 2, 'two IPv6 host ports lead to the web pod');
      if (residentMode()) {
        t.match(daemonLog(sandbox), new RegExp(`ADD trestle-bridge network=${networkName(sandbox)} container=${web.id} `), "the sandbox's daemon served the ADD");
      }
    });

    await t.test('pod-to-pod and LAN -> hostPort traffic', async (t) => {
      const webNs = basename(web.netns);
      const peerNs = basename(peer.netns);
      t.ok(await pingSoon(sandbox, webNs, peer.ip4), 'web pings peer over IPv4');
      t.ok(await pingSoon(sandbox, peerNs, web.ip4), 'peer pings web over IPv4');
      t.ok(await pingSoon(sandbox, webNs, peer.ip6), 'web pings peer over IPv6');

      // fetchIn returns the body as execa does, without its final newline.
      const page = `served by the web pod of ${sandbox.id}`;
      const httpd = sandbox.spawn(webNs, 'busybox', ['httpd', '-f', '-p', '80', '-h', webRoot(sandbox, 'www', page)]);
      await waitForHttp(sandbox, webNs, 'http://127.0.0.1/');
      t.equal(await fetchIn(sandbox, sandbox.lanNs, `http://${lan.nodeAddress}:8080/`), page, 'LAN -> node:8080 (tcp) reaches the pod');
      t.equal(await fetchIn(sandbox, sandbox.lanNs, `http://[${lan.nodeAddress6}]:8080/`), page, 'LAN -> [node]:8080 over IPv6');
      startUdpEcho(sandbox, webNs, '0.0.0.0', 53);
      t.equal(await udpRoundTrip(sandbox, sandbox.lanNs, lan.nodeAddress, 5353), 'echo:ping', 'LAN -> node:5353 (udp) reaches the pod');
      httpd.kill('SIGKILL');
    });

    await t.test('StopPodSandbox then RemovePodSandbox leave nothing', async (t) => {
      started = Date.now();
      await cri.client.stopPodSandbox(web.id);
      t.comment(`StopPodSandbox: ${Date.now() - started} ms`);
      // A kubelet may stop a pod more than once before removing it.
      await cri.client.stopPodSandbox(web.id);
      await cri.client.stopPodSandbox(peer.id);
      for (const id of [web.id, peer.id]) await cri.client.removePodSandbox(id);
      await nothingLeft(t, [web.id, peer.id], [web.netns, peer.netns]);
      if (residentMode()) {
        t.match(daemonLog(sandbox), new RegExp(`DEL trestle-bridge network=${networkName(sandbox)} container=${web.id} `), "the sandbox's daemon served the DEL");
      }
    });

    const burstIds: string[] = [];
    const burstNamespaces: string[] = [];
    const burstPids: number[] = [];
    await t.test(`${burst} pods started at once`, async (t) => {
      started = Date.now();
      const outcomes = await Promise.allSettled(
        Array.from({ length: burst }, (_, index) => cri.client.runPodSandbox(podSpec(sandbox, `burst-${index}`, [{ protocol: 'TCP', containerPort: 80, hostPort: 20_000 + index }]))),
      );
      const elapsed = Date.now() - started;
      t.comment(`${burst} RunPodSandbox in parallel: ${elapsed} ms`);
      const failures = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [String(outcome.reason)] : []));
      t.same(failures, [], 'no RunPodSandbox failed');
      for (const outcome of outcomes) if (outcome.status === 'fulfilled') burstIds.push(outcome.value);
      const pods = await Promise.all(burstIds.map((id) => cri.pod(id)));
      for (const pod of pods) {
        burstNamespaces.push(pod.netns);
        burstPids.push(pod.pid);
      }
      const ips4 = new Set(pods.map((pod) => pod.status.network?.ip ?? ''));
      const ips6 = new Set(pods.map((pod) => pod.status.network?.additionalIps[0]?.ip ?? ''));
      t.equal(pods.filter((pod) => pod.status.state === 'SANDBOX_READY').length, burst, `${burst} pods ready`);
      t.ok([...ips4].every((address) => inSubnet(address, subnet4)) && ips4.size === burst, `${burst} distinct IPv4 addresses`);
      t.ok([...ips6].every((address) => inSubnet(address, subnet6)) && ips6.size === burst, `${burst} distinct IPv6 addresses`);
      t.equal(reservations(sandbox).length, 2 * burst, `${2 * burst} reservations`);
      t.equal((await setElements(sandbox, 'map', 'hp_any4')).length, burst, `${burst} IPv4 host ports`);
    });

    await t.test('containerd killed with SIGKILL and restarted while pods run; then nothing leaks', async (t) => {
      const killedPid = cri.pid;
      await cri.killDaemon();
      t.ok(killedPid !== undefined && !existsSync(`/proc/${killedPid}`), `containerd (pid ${String(killedPid)}) is gone`);
      t.ok(burstPids.length > 0 && burstPids.every((pid) => pid > 0 && existsSync(`/proc/${pid}`)), 'the pods run on');
      started = Date.now();
      await cri.start();
      t.comment(`containerd restart: ${Date.now() - started} ms`);
      const listed = await cri.client.list();
      t.same(
        burstIds.filter((id) => listed.find((pod) => pod.id === id)?.state !== 'SANDBOX_READY'),
        [],
        'the restarted containerd lists every pod as ready',
      );
      const late = await cri.client.runPodSandbox(podSpec(sandbox, 'late'));
      const latePod = await cri.pod(late);
      t.ok(inSubnet(latePod.status.network?.ip ?? '', subnet4), `a pod started after the restart gets ${String(latePod.status.network?.ip)}`);
      t.equal(reservations(sandbox).length, 2 * (burst + 1), 'its addresses are new ones');

      started = Date.now();
      const ids = [...burstIds, late];
      const retried: string[] = [];
      const outcomes = await Promise.allSettled(ids.map((id) => stopAndRemove(cri, id, retried)));
      t.comment(`${ids.length} StopPodSandbox + RemovePodSandbox in parallel: ${Date.now() - started} ms`);
      t.comment(`StopPodSandbox calls that failed and were tried again: ${retried.length}${retried.length > 0 ? `, first: ${retried[0]}` : ''}`);
      t.same(outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [String(outcome.reason)] : [])), [], 'every stop and remove succeeded');
      await nothingLeft(t, ids, [...burstNamespaces, latePod.netns]);
    });
  });
}
