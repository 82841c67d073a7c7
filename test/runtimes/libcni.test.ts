// The plugins under libcni, the library containerd, CRI-O and podman embed: the
// containerd-style dual-stack example conflist, driven by test/runtimes/libcni/main.go
// in a sandbox's node namespace, as those runtimes drive it. ADD results must survive
// libcni's parsing, CHECK must pass with libcni's cached result as prevResult, two
// containers must reach each other, a port mapping requested as libcni capability
// arguments must answer, and DEL (from libcni's cache) must leave nothing behind.
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import ipaddr from 'ipaddr.js';
import t from 'tap';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { addressOnly, addressesOf, defaultRoute, isStoreBookkeeping, link, ping, veths } from '../helpers/bridge.js';
import { buildDriver, cachedResultPath, describeOutcome, missingToolchain, runDriver, sandboxedConflist, type DriverCall, type Json } from '../helpers/libcni.js';
import { fetchIn, waitForHttp, webRoot } from '../helpers/nat.js';

const missing = await missingToolchain();
if (missing !== undefined) {
  // Loud: a skipped runtime test must not read as a pass in a CI log.
  process.stderr.write(`\n*** libcni runtime test SKIPPED: ${missing} ***\n\n`);
  t.plan(0, `libcni driver cannot be built: ${missing}`);
} else {
  const driver = await buildDriver();
  run(driver);
}

function inSubnet(address: string, subnet: string): boolean {
  const parsed = ipaddr.parse(address);
  const range = ipaddr.parseCIDR(subnet);
  return parsed.kind() === range[0].kind() && parsed.match(range);
}

function subnetsOf(list: Json): { 4: string; 6: string } {
  const ranges = (list['plugins'][0]['ipam']['ranges'] as Array<Array<{ subnet: string }>>).map((set) => set[0]!.subnet);
  return { 4: ranges.find((subnet) => !subnet.includes(':'))!, 6: ranges.find((subnet) => subnet.includes(':'))! };
}

// The reserved addresses of a network: every IPAM file but the bookkeeping ones.
function reservations(sandbox: Sandbox, network: string): string[] {
  const dir = join(sandbox.dataDir, network);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((entry) => !isStoreBookkeeping(entry));
}

async function tableElements(sandbox: Sandbox): Promise<string[]> {
  const listing = await sandbox.inNode('nft', ['list', 'table', 'inet', 'trestle'], { reject: false });
  return String(listing.stdout)
    .split('\n')
    .filter((line) => line.includes('elements ='))
    .map((line) => line.trim());
}

// What containerd's CRI plugin sends: a 64-hex sandbox ID and the pod's identity in
// CNI_ARGS behind IgnoreUnknown, which plugins must accept without knowing the keys.
function criRequest(container: { path: string }, name: string, capArgs?: Json): DriverCall {
  const containerId = randomBytes(32).toString('hex');
  const cniArgs = `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${name};K8S_POD_INFRA_CONTAINER_ID=${containerId};K8S_POD_UID=${randomBytes(16).toString('hex')}`;
  return { containerId, netns: container.path, ifname: 'eth0', cniArgs, ...(capArgs ? { capArgs } : {}) };
}

function run(driver: string): void {
  for (const cniVersion of ['1.0.0', '0.4.0']) {
    t.test(`libcni, cniVersion ${cniVersion}: ADD, CHECK, traffic, port mapping, DEL`, async (t) => {
      const sandbox = await Sandbox.create(t);
      const { path: conflist, list } = sandboxedConflist(sandbox, cniVersion);
      const network = String(list['name']);
      const subnets = subnetsOf(list);

      // libcni's VERSION check: every plugin is asked which versions it speaks.
      const validation = await runDriver(sandbox, driver, 'validate', conflist);
      t.equal(validation.exitCode, 0, `libcni validates the list (${describeOutcome(validation)})`);
      t.strictSame(validation.json?.['capabilities'], ['portMappings'], 'libcni sees the portMappings capability');
      for (const type of ['trestle-bridge', 'trestle-portmap']) {
        t.ok((validation.json?.['supportedVersions']?.[type] as string[] | undefined)?.includes(cniVersion), `${type} claims ${cniVersion}`);
      }

      const containers = [await sandbox.addContainer(), await sandbox.addContainer()];
      const hostPort = 8080;
      // camelCase keys, as CRI-O's ocicni and podman marshal them (containerd: below).
      const requests = [
        criRequest(containers[0]!, 'web', { portMappings: [{ hostPort, containerPort: 80, protocol: 'tcp' }] }),
        criRequest(containers[1]!, 'client'),
      ];

      const results: Json[] = [];
      for (const [index, request] of requests.entries()) {
        const added = await runDriver(sandbox, driver, 'add', conflist, request);
        t.equal(added.exitCode, 0, `container ${index + 1}: ADD through libcni succeeds (${describeOutcome(added)})`);
        results.push(added.json ?? {});
      }

      const addresses: Array<{ 4: string; 6: string }> = [];
      for (const [index, result] of results.entries()) {
        const container = containers[index]!;
        const label = `container ${index + 1}`;
        t.equal(result['cniVersion'], cniVersion, `${label}: the result is in the list's version`);
        const interfaces = (result['interfaces'] ?? []) as Json[];
        const eth0Index = interfaces.findIndex((entry) => entry['name'] === 'eth0' && entry['sandbox'] === container.path);
        t.ok(eth0Index >= 0, `${label}: the result lists eth0 in the container's namespace`);
        const hostVeth = interfaces.find((entry) => entry['name'] !== 'eth0' && String(entry['name']).startsWith('veth'));
        t.ok(hostVeth, `${label}: the result lists the host veth`);
        t.equal((await link(sandbox, sandbox.node, String(hostVeth?.['name'])))?.master, 'cni0', `${label}: the host veth is a port of cni0`);

        const ips = (result['ips'] ?? []) as Json[];
        t.equal(ips.length, 2, `${label}: two addresses`);
        const eth0 = await link(sandbox, container.name, 'eth0');
        t.ok(eth0?.flags.includes('UP'), `${label}: eth0 is up`);
        const mine = {} as { 4: string; 6: string };
        for (const family of [4, 6] as const) {
          const ip = ips.find((entry) => String(entry['address']).includes(':') === (family === 6));
          const address = String(ip?.['address']);
          t.ok(ip && inSubnet(addressOnly(address), subnets[family]), `${label}: IPv${family} ${address} is from ${subnets[family]}`);
          t.equal(ip?.['interface'], eth0Index, `${label}: ${address} belongs to eth0`);
          if (cniVersion.startsWith('0.')) t.equal(ip?.['version'], String(family), `${label}: ${cniVersion} ips[].version`);
          t.ok(addressesOf(eth0, family).includes(address), `${label}: eth0 holds ${address}`);
          const route = await defaultRoute(sandbox, container.name, family);
          t.equal(route?.gateway, ip?.['gateway'], `${label}: IPv${family} default route via the result's gateway`);
          t.equal(route?.dev, 'eth0', `${label}: IPv${family} default route on eth0`);
          mine[family] = addressOnly(address);
        }
        addresses.push(mine);
        t.ok(existsSync(cachedResultPath(sandbox, network, requests[index]!.containerId)), `${label}: libcni cached the result`);
      }
      t.equal(reservations(sandbox, network).length, 4, 'four addresses reserved in the sandbox store');

      for (const [index, request] of requests.entries()) {
        const checked = await runDriver(sandbox, driver, 'check', conflist, request);
        t.equal(checked.exitCode, 0, `container ${index + 1}: CHECK through libcni passes (${describeOutcome(checked)})`);
      }

      for (const family of [4, 6] as const) {
        for (const [from, to] of [
          [0, 1],
          [1, 0],
        ] as const) {
          const target = addresses[to]![family];
          t.ok(await ping(sandbox, containers[from]!.name, target), `IPv${family}: container ${from + 1} reaches container ${to + 1} (${target})`);
        }
      }

      const root = webRoot(sandbox, `www-${cniVersion}`, `hello from libcni ${cniVersion}\n`);
      sandbox.spawn(containers[0]!.name, 'busybox', ['httpd', '-f', '-p', '80', '-h', root]);
      await waitForHttp(sandbox, containers[0]!.name, 'http://127.0.0.1:80/');
      t.equal(await fetchIn(sandbox, sandbox.node, `http://127.0.0.1:${hostPort}/`), `hello from libcni ${cniVersion}`, `the node's 127.0.0.1:${hostPort} reaches container 1's port 80`);
      t.ok((await tableElements(sandbox)).some((line) => line.includes(String(hostPort))), 'the mapping is an element of inet trestle');

      for (const [index, request] of requests.entries()) {
        const deleted = await runDriver(sandbox, driver, 'del', conflist, request);
        t.equal(deleted.exitCode, 0, `container ${index + 1}: DEL through libcni succeeds (${describeOutcome(deleted)})`);
        t.notOk(existsSync(cachedResultPath(sandbox, network, request.containerId)), `container ${index + 1}: libcni dropped its cached result`);
        t.notOk(await link(sandbox, containers[index]!.name, 'eth0'), `container ${index + 1}: eth0 is gone`);
      }
      t.strictSame(await veths(sandbox), [], 'no veth left on the node');
      t.strictSame(reservations(sandbox, network), [], 'no address reserved in the store');
      t.strictSame(await tableElements(sandbox), [], 'no element left in inet trestle');
      t.equal(await fetchIn(sandbox, sandbox.node, `http://127.0.0.1:${hostPort}/`), undefined, 'the host port no longer answers');

      for (const [index, request] of requests.entries()) {
        const again = await runDriver(sandbox, driver, 'del', conflist, request);
        t.equal(again.exitCode, 0, `container ${index + 1}: a second DEL succeeds (${describeOutcome(again)})`);
      }
    });
  }

  // containerd's CRI passes go-cni's PortMapping, a struct without JSON tags, as the
  // portMappings capability, so libcni marshals it with Go field names. The reference
  // portmap decodes it with Go's case-insensitive encoding/json; a plugin that reads
  // only "hostPort" refuses every containerd pod that maps a port.
  t.test("libcni, containerd's portMappings as go-cni marshals them", async (t) => {
    const sandbox = await Sandbox.create(t);
    const { path: conflist, list } = sandboxedConflist(sandbox, '1.0.0');
    const container = await sandbox.addContainer();
    const request = criRequest(container, 'go-cni', { portMappings: [{ HostPort: 8081, ContainerPort: 80, Protocol: 'tcp', HostIP: '' }] });
    const added = await runDriver(sandbox, driver, 'add', conflist, request);
    t.equal(added.exitCode, 0, `ADD succeeds (${describeOutcome(added)})`);
    t.ok((await tableElements(sandbox)).some((line) => line.includes('8081')), 'host port 8081 is mapped');
    // containerd sends DEL with the same capability arguments after a failed ADD and
    // when the pod goes; portmap runs first on DEL, so its refusal keeps the bridge's
    // DEL from ever running and the pod's veth and addresses are never released.
    const deleted = await runDriver(sandbox, driver, 'del', conflist, request);
    t.equal(deleted.exitCode, 0, `DEL succeeds (${describeOutcome(deleted)})`);
    t.strictSame(await veths(sandbox), [], 'no veth left on the node');
    t.strictSame(reservations(sandbox, String(list['name'])), [], 'no address reserved in the store');
    t.strictSame(await tableElements(sandbox), [], 'no element left in inet trestle');
  });

  // libcni 1.1.2 implements spec 1.0.0: VERSION validation lets a 1.1.0 list through
  // (the plugins claim 1.1.0) but it cannot parse the 1.1.0 result the first plugin
  // returns, so ADD fails after the bridge did its work. A runtime then sends DEL, with
  // no cached result; that DEL must undo everything. A newer libcni must simply work.
  t.test('libcni, cniVersion 1.1.0: what a spec-1.0.0 libcni does with it', async (t) => {
    const sandbox = await Sandbox.create(t);
    const { path: conflist, list } = sandboxedConflist(sandbox, '1.1.0');
    const network = String(list['name']);
    const validation = await runDriver(sandbox, driver, 'validate', conflist);
    t.equal(validation.exitCode, 0, `libcni's VERSION check accepts 1.1.0 (${describeOutcome(validation)})`);
    const libcniKnows = validation.json?.['libcniSpecVersion'] === '1.1.0';
    t.comment(`libcni implements spec ${String(validation.json?.['libcniSpecVersion'])}`);

    const container = await sandbox.addContainer();
    const request = criRequest(container, 'v110', { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] });
    const added = await runDriver(sandbox, driver, 'add', conflist, request);
    if (libcniKnows) {
      t.equal(added.exitCode, 0, `ADD succeeds (${describeOutcome(added)})`);
    } else {
      t.not(added.exitCode, 0, 'ADD fails');
      t.match(added.stderr, /plugin type="trestle-bridge" failed \(add\): unsupported CNI result version "1\.1\.0"/, 'libcni cannot parse the 1.1.0 result');
      t.notOk(existsSync(cachedResultPath(sandbox, network, request.containerId)), 'nothing cached');
    }
    const deleted = await runDriver(sandbox, driver, 'del', conflist, request);
    t.equal(deleted.exitCode, 0, `the runtime's DEL succeeds (${describeOutcome(deleted)})`);
    t.notOk(await link(sandbox, container.name, 'eth0'), 'eth0 is gone');
    t.strictSame(await veths(sandbox), [], 'no veth left on the node');
    t.strictSame(reservations(sandbox, network), [], 'no address reserved in the store');
    t.strictSame(await tableElements(sandbox), [], 'no element left in inet trestle');
  });
}
