// trestle-portmap's CHECK, GC, conntrack flushing and input errors, on the real kernel.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { stateFileName } from '../../src/firewall/state.js';
import { ChainError } from '../../src/runtime/chain.js';
import { Sandbox, lan } from '../../src/sandbox/sandbox.js';
import { natPlugins, setElements, startUdpEcho, udpRoundTrip } from '../helpers/nat.js';

function failureOf(action: () => unknown): ChainError['failure'] | undefined {
  try {
    action();
  } catch (error) {
    if (error instanceof ChainError) return error.failure;
    throw error;
  }
  return undefined;
}

t.test('CHECK sees a mapping disappear; GC removes only stale mappings', async (t) => {
  const sandbox = await Sandbox.create(t);
  const list = sandbox.conflist(natPlugins(sandbox));
  const runner = sandbox.runner();
  const containers = await Promise.all([sandbox.addContainer(), sandbox.addContainer(), sandbox.addContainer()]);
  const attachments = containers.map((container, index) =>
    sandbox.attachment(container, { capabilities: { portMappings: [{ hostPort: 7000 + index, containerPort: 80, protocol: 'tcp' }] } }),
  );
  const results = attachments.map((attachment) => runner.add(list, attachment));
  t.doesNotThrow(() => runner.check(list, attachments[0]!, results[0]!), 'CHECK passes after ADD');
  await sandbox.inNode('nft', ['delete', 'element', 'inet', 'trestle', 'hp_any4', '{ tcp . 7000 }']);
  const broken = failureOf(() => runner.check(list, attachments[0]!, results[0]!));
  t.equal(broken?.plugin, 'trestle-portmap', 'CHECK fails in trestle-portmap once the mapping is gone');
  t.match(broken?.msg ?? '', /port mapping rules .* missing/, 'and says what is missing');

  runner.gc(list, [{ containerId: attachments[1]!.containerId, ifname: 'eth0' }]);
  const mapped = await setElements(sandbox, 'map', 'hp_any4');
  t.equal(mapped.length, 1, 'GC keeps the valid attachment only');
  t.match(mapped[0] ?? '', /7001/, 'the kept mapping is the valid one');
  t.equal((await setElements(sandbox, 'set', 'masq4')).length, 1, 'GC removed the stale masquerade entries too');
  t.doesNotThrow(() => runner.status(list), 'STATUS succeeds');
});

t.test('ADD flushes stale UDP conntrack entries for its host port', async (t) => {
  const sandbox = await Sandbox.create(t);
  await sandbox.addLan();
  const list = sandbox.conflist(natPlugins(sandbox));
  const runner = sandbox.runner();
  // Connection tracking starts in a namespace with the first rule that needs it: a
  // first container's mapping puts Trestle's NAT table in place.
  const first = await sandbox.addContainer();
  runner.add(list, sandbox.attachment(first, { capabilities: { portMappings: [{ hostPort: 8081, containerPort: 80, protocol: 'tcp' }] } }));
  // A datagram to the port before its mapping exists leaves a conntrack entry
  // pointing at the node itself; without the flush, replies would keep going there.
  startUdpEcho(sandbox, sandbox.node, '0.0.0.0', 5353);
  t.equal(await udpRoundTrip(sandbox, sandbox.lanNs, lan.nodeAddress, 5353), 'echo:ping', 'the node answers on 5353 before the mapping');
  const before = await sandbox.inNode('conntrack', ['-L', '-p', 'udp', '--orig-port-dst', '5353'], { reject: false });
  t.match(String(before.stdout), /dport=5353/, 'the datagram left an entry for the port');
  const container = await sandbox.addContainer();
  runner.add(list, sandbox.attachment(container, { capabilities: { portMappings: [{ hostPort: 5353, containerPort: 53, protocol: 'udp' }] } }));
  const entries = await sandbox.inNode('conntrack', ['-L', '-p', 'udp', '--orig-port-dst', '5353'], { reject: false });
  t.notMatch(String(entries.stdout), /dport=5353/, 'no stale UDP entry for the mapped port is left');
});

t.test('bad input', async (t) => {
  const sandbox = await Sandbox.create(t);
  const runner = sandbox.runner();
  const container = await sandbox.addContainer();
  const list = sandbox.conflist(natPlugins(sandbox));
  const portmap = list.plugins[1] as Record<string, unknown>;
  const invalid = [
    [{ hostPort: 0, containerPort: 80, protocol: 'tcp' }],
    [{ hostPort: 8080, containerPort: 80, protocol: 'icmp' }],
    [{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: 'not-an-ip' }],
    [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }, { hostPort: 8080, containerPort: 81, protocol: 'tcp' }],
  ];
  const prevResult = { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', sandbox: container.path }], ips: [{ address: '10.77.0.9/16', interface: 0 }] };
  for (const portMappings of invalid) {
    const failure = failureOf(() =>
      runner.invoke('trestle-portmap', 'ADD', { ...portmap, cniVersion: '1.1.0', name: list.name, runtimeConfig: { portMappings }, prevResult }, sandbox.attachment(container)),
    );
    t.equal(failure?.code, 7, `invalid mapping ${JSON.stringify(portMappings)} -> code 7`);
  }
  const unsupported = failureOf(() =>
    runner.invoke('trestle-portmap', 'ADD', { ...portmap, cniVersion: '1.1.0', name: list.name, conditionsV4: ['-s', '1.2.3.4'], prevResult }, sandbox.attachment(container)),
  );
  t.equal(unsupported?.code, 2, 'an iptables-only option is refused with code 2');
  const orphan = failureOf(() =>
    runner.invoke('trestle-portmap', 'ADD', { ...portmap, cniVersion: '1.1.0', name: list.name, runtimeConfig: { portMappings: invalid[0] } }, sandbox.attachment(container)),
  );
  t.equal(orphan?.code, 7, 'ADD without prevResult -> code 7');
  const passThrough = runner.invoke('trestle-portmap', 'ADD', { ...portmap, cniVersion: '1.1.0', name: list.name, prevResult }, sandbox.attachment(container));
  t.same(passThrough?.['ips'], prevResult.ips, 'with no mappings, prevResult passes through unchanged');
});

t.test('DEL after an ADD that died between its state file and its transaction', async (t) => {
  const sandbox = await Sandbox.create(t);
  const list = sandbox.conflist(natPlugins(sandbox));
  const runner = sandbox.runner();
  const [holder, interrupted] = await Promise.all([sandbox.addContainer(), sandbox.addContainer()]);
  const web = { hostPort: 8080, containerPort: 80, protocol: 'tcp' };
  const holderAttachment = sandbox.attachment(holder, { capabilities: { portMappings: [web] } });
  runner.add(list, holderAttachment);
  const interruptedAttachment = sandbox.attachment(interrupted, { capabilities: { portMappings: [web] } });
  const bridgeOnly = { ...list, plugins: list.plugins.slice(0, 1) };
  const interruptedResult = runner.add(bridgeOnly, interruptedAttachment);

  // What trestle-portmap records before its nft transaction: the second container's
  // claim on 8080, which the kernel never took because the first one holds it.
  const stateDir = join(sandbox.stateDir, 'firewall', list.name);
  const holderState = readFileSync(join(stateDir, stateFileName('portmap', { network: list.name, containerId: holder.id, ifname: 'eth0' })), 'utf8');
  const holderAddress = (JSON.parse(holderState) as { portMappings: Array<{ containerIP: string }> }).portMappings[0]!.containerIP;
  const interruptedAddress = ((interruptedResult['ips'] as Array<{ address: string }>)[0]!.address.split('/')[0]) as string;
  const interruptedFile = join(stateDir, stateFileName('portmap', { network: list.name, containerId: interrupted.id, ifname: 'eth0' }));
  writeFileSync(interruptedFile, holderState.replaceAll(holder.id, interrupted.id).replaceAll(holderAddress, interruptedAddress));

  t.doesNotThrow(() => runner.del(list, interruptedAttachment, interruptedResult), 'DEL of the interrupted container succeeds');
  t.notOk(existsSync(interruptedFile), 'its state file is gone');
  const mapped = await setElements(sandbox, 'map', 'hp_any4');
  t.equal(mapped.length, 1, "the holder's mapping stays");
  t.match(mapped[0] ?? '', holderAddress, 'pointing at the holder');
  t.notMatch((await setElements(sandbox, 'set', 'masq4')).join(' '), interruptedAddress, "the interrupted container's masquerade entry is gone: the bridge's DEL ran");
});
