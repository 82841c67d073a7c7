// Two containers on one trestle-bridge network get working interfaces: addresses,
// default routes and traffic to each other and to the gateway, in IPv4 and dual
// stack; and the ADD result has the shape of every CNI version a runtime may ask for.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import {
  addressOnly,
  addressesOf,
  bridgeEntry,
  bridgeName,
  call,
  defaultRoute,
  describe,
  gateway4,
  gateway6,
  invoke,
  link,
  pluginConfig,
  ping,
  type Json,
} from '../helpers/bridge.js';

for (const dualStack of [false, true]) {
  t.test(`two containers on one bridge, ${dualStack ? 'dual stack' : 'IPv4'}`, async (t) => {
    const sandbox = await Sandbox.create(t);
    const runner = sandbox.runner();
    const list = sandbox.conflist([bridgeEntry(sandbox, { dualStack })], '1.0.0');
    const containers = [await sandbox.addContainer(), await sandbox.addContainer()];
    const results = containers.map((container) => runner.add(list, sandbox.attachment(container)));
    const families: Array<4 | 6> = dualStack ? [4, 6] : [4];
    const gateways = { 4: gateway4, 6: gateway6 };

    const addressesByContainer: Array<Record<4 | 6, string>> = [];
    for (const [index, container] of containers.entries()) {
      const ips = (results[index]?.['ips'] ?? []) as Array<{ address: string; gateway?: string }>;
      t.equal(ips.length, families.length, `container ${index + 1}: one address per family`);
      const eth0 = await link(sandbox, container.name, 'eth0');
      t.ok(eth0?.flags.includes('UP'), `container ${index + 1}: eth0 is up`);
      const addresses = {} as Record<4 | 6, string>;
      for (const family of families) {
        const ip = ips.find((entry) => entry.address.includes(':') === (family === 6));
        t.ok(ip, `container ${index + 1}: an IPv${family} address in the result`);
        if (!ip) continue;
        t.equal(ip.gateway, gateways[family], `container ${index + 1}: IPv${family} gateway in the result`);
        t.ok(addressesOf(eth0, family).includes(ip.address), `container ${index + 1}: eth0 holds ${ip.address}`);
        const route = await defaultRoute(sandbox, container.name, family);
        t.equal(route?.gateway, gateways[family], `container ${index + 1}: IPv${family} default route via the gateway`);
        t.equal(route?.dev, 'eth0', `container ${index + 1}: IPv${family} default route on eth0`);
        addresses[family] = addressOnly(ip.address);
      }
      addressesByContainer.push(addresses);
    }
    t.not(addressesByContainer[0]?.[4], addressesByContainer[1]?.[4], 'the containers have distinct addresses');

    // The host ends carry no IPv6 of their own (the node's IPv6 table would grow by
    // each port's routes), yet IPv6 crosses them: the pings below.
    for (const [index] of containers.entries()) {
      const hostVeth = ((results[index]?.['interfaces'] ?? []) as Array<{ name: string; sandbox?: string }>).find((entry) => entry.sandbox === undefined && entry.name !== bridgeName)?.name ?? '';
      const setting = await sandbox.exec(sandbox.node, 'cat', [`/proc/sys/net/ipv6/conf/${hostVeth}/disable_ipv6`], { reject: false });
      t.equal(setting.stdout.trim(), '1', `container ${index + 1}: IPv6 is off on its host end ${hostVeth}`);
    }

    const bridge = await link(sandbox, sandbox.node, bridgeName);
    for (const family of families) {
      t.ok(addressesOf(bridge, family).some((cidr) => addressOnly(cidr) === gateways[family]), `the bridge holds the IPv${family} gateway`);
      for (const [from, to] of [
        [0, 1],
        [1, 0],
      ] as const) {
        const source = containers[from]!.name;
        const target = addressesByContainer[to]![family];
        t.ok(await ping(sandbox, source, target), `IPv${family}: container ${from + 1} reaches container ${to + 1} (${target})`);
      }
      t.ok(await ping(sandbox, containers[0]!.name, gateways[family]), `IPv${family}: a container reaches the gateway`);
      t.ok(await ping(sandbox, sandbox.node, addressesByContainer[0]![family]), `IPv${family}: the node reaches a container`);
    }
  });
}

// Per-version shape: 0.3.x/0.4.0 carry ips[].version, 1.x do not; every 0.3+ result
// lists the bridge, the host veth and eth0 (with its sandbox), and the addresses
// belong to eth0 (interface 2). 0.2.0 is the legacy ip4/ip6 shape.
t.test('ADD results in the shape of each CNI version', async (t) => {
  const sandbox = await Sandbox.create(t);
  const entry = bridgeEntry(sandbox, { dualStack: true });
  for (const version of ['0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
    const container = await sandbox.addContainer();
    const outcome = await invoke(sandbox, 'trestle-bridge', call('ADD', sandbox.attachment(container)), pluginConfig(sandbox, entry, version));
    t.equal(outcome.exitCode, 0, `${version}: ADD succeeds (${describe(outcome)})`);
    const result = outcome.json ?? {};
    t.equal(result['cniVersion'], version, `${version}: the result names its version`);
    const interfaces = (result['interfaces'] ?? []) as Json[];
    t.equal(interfaces.length, 3, `${version}: three interfaces`);
    const [bridge, hostVeth, eth0] = interfaces;
    t.equal(bridge?.['name'], bridgeName, `${version}: interfaces[0] is the bridge`);
    t.notOk('sandbox' in (bridge ?? {}), `${version}: the bridge has no sandbox`);
    t.match(hostVeth?.['name'], /^veth/, `${version}: interfaces[1] is the host veth`);
    t.notOk('sandbox' in (hostVeth ?? {}), `${version}: the host veth has no sandbox`);
    t.equal(eth0?.['name'], 'eth0', `${version}: interfaces[2] is eth0`);
    t.equal(eth0?.['sandbox'], container.path, `${version}: eth0 is in the container's namespace`);

    const kernelBridge = await link(sandbox, sandbox.node, bridgeName);
    const kernelVeth = await link(sandbox, sandbox.node, String(hostVeth?.['name']));
    const kernelEth0 = await link(sandbox, container.name, 'eth0');
    t.equal(bridge?.['mac'], kernelBridge?.address, `${version}: the bridge MAC is the kernel's`);
    t.equal(hostVeth?.['mac'], kernelVeth?.address, `${version}: the host veth MAC is the kernel's`);
    t.equal(kernelVeth?.master, bridgeName, `${version}: the host veth is a port of the bridge`);
    t.equal(eth0?.['mac'], kernelEth0?.address, `${version}: the eth0 MAC is the kernel's`);

    const ips = (result['ips'] ?? []) as Json[];
    t.equal(ips.length, 2, `${version}: an IPv4 and an IPv6 address`);
    const versioned = version.startsWith('0.');
    for (const ip of ips) {
      const family = String(ip['address']).includes(':') ? '6' : '4';
      if (versioned) t.equal(ip['version'], family, `${version}: ips[].version is "${family}"`);
      else t.notOk('version' in ip, `${version}: ips[] has no version`);
      t.equal(ip['interface'], 2, `${version}: ${String(ip['address'])} belongs to interface 2`);
      t.ok(addressesOf(kernelEth0, Number(family) as 4 | 6).includes(String(ip['address'])), `${version}: eth0 holds ${String(ip['address'])}`);
    }
    const routes = (result['routes'] ?? []) as Json[];
    t.strictSame(
      routes.map((route) => `${String(route['dst'])} via ${String(route['gw'])}`).sort(),
      [`0.0.0.0/0 via ${gateway4}`, `::/0 via ${gateway6}`],
      `${version}: the default routes`,
    );
  }

  const legacyContainer = await sandbox.addContainer();
  const legacy = await invoke(sandbox, 'trestle-bridge', call('ADD', sandbox.attachment(legacyContainer)), pluginConfig(sandbox, entry, '0.2.0'));
  t.equal(legacy.exitCode, 0, `0.2.0: ADD succeeds (${describe(legacy)})`);
  const result = legacy.json ?? {};
  t.equal(result['cniVersion'], '0.2.0');
  t.notOk('interfaces' in result, '0.2.0: no interfaces list');
  t.notOk('ips' in result, '0.2.0: no ips list');
  const eth0 = await link(sandbox, legacyContainer.name, 'eth0');
  for (const [key, gateway, dst, family] of [
    ['ip4', gateway4, '0.0.0.0/0', 4],
    ['ip6', gateway6, '::/0', 6],
  ] as const) {
    const section = result[key] as Json | undefined;
    t.ok(addressesOf(eth0, family).includes(String(section?.['ip'])), `0.2.0: ${key}.ip is on eth0`);
    t.equal(section?.['gateway'], gateway, `0.2.0: ${key}.gateway`);
    t.strictSame(section?.['routes'], [{ dst, gw: gateway }], `0.2.0: ${key}.routes`);
  }
});

// Runtimes name a namespace by any path: /run/netns/<name> (reached with `ip -n`) or a
// process's /proc/<pid>/ns/net, which has no name (reached through nsenter).
t.test('a container namespace given as /proc/<pid>/ns/net', async (t) => {
  const sandbox = await Sandbox.create(t);
  const runner = sandbox.runner();
  const list = sandbox.conflist([bridgeEntry(sandbox)], '1.0.0');
  const named = await sandbox.addContainer();
  const holder = sandbox.spawn(named.name, 'sleep', ['60']);
  // `ip netns exec` replaces itself with the program: once its name is sleep, the
  // process is in the container's namespace.
  const pid = holder.pid as number;
  for (let attempt = 0; attempt < 100 && readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'sleep'; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const attachment = { ...sandbox.attachment(named), netns: `/proc/${pid}/ns/net` };
  const result = runner.add(list, attachment);
  const eth0 = await link(sandbox, named.name, 'eth0');
  t.same(addressesOf(eth0, 4), [((result['ips'] as Json[])[0] as Json)['address']], 'eth0 in that namespace holds the address');
  t.ok(await ping(sandbox, named.name, gateway4), 'and reaches the gateway');
  t.doesNotThrow(() => runner.check(list, attachment, result), 'CHECK passes');
  runner.del(list, attachment, result);
  t.notOk(await link(sandbox, named.name, 'eth0'), 'DEL removed eth0');
});
