// CHECK holds while the attachment is intact and fails, naming the missing piece,
// once the container loses its address, its default route or its host veth.
import t from 'tap';
import { ChainError, type Attachment, type ChainRunner, type ConfList, type Json } from '../../src/runtime/chain.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { bridgeEntry, call, describe, gateway4, gateway6, invoke, pluginConfig, resultHostVeth } from '../helpers/bridge.js';

function checkFailure(runner: ChainRunner, list: ConfList, attachment: Attachment, prevResult: Json): ChainError['failure'] | undefined {
  try {
    runner.check(list, attachment, prevResult);
  } catch (error) {
    if (error instanceof ChainError) return error.failure;
    throw error;
  }
  return undefined;
}

t.test('CHECK passes on an intact attachment and names what went missing', async (t) => {
  const sandbox = await Sandbox.create(t);
  const runner = sandbox.runner();
  const list = sandbox.conflist([bridgeEntry(sandbox, { dualStack: true })], '1.0.0');
  const containers = await Promise.all([1, 2, 3, 4].map(() => sandbox.addContainer()));
  const attachments = containers.map((container) => sandbox.attachment(container));
  const results = attachments.map((attachment) => runner.add(list, attachment));
  for (const [index, attachment] of attachments.entries()) {
    t.equal(checkFailure(runner, list, attachment, results[index]!), undefined, `CHECK passes right after ADD (container ${index + 1})`);
  }

  const ipv4 = ((results[0]!['ips'] ?? []) as Array<{ address: string }>).find((ip) => !ip.address.includes(':'))!.address;
  await sandbox.exec(containers[0]!.name, 'ip', ['addr', 'del', ipv4, 'dev', 'eth0']);
  const lostAddress = checkFailure(runner, list, attachments[0]!, results[0]!);
  t.equal(lostAddress?.code, 104, 'CHECK fails once the address is removed');
  t.match(lostAddress?.msg, new RegExp(`address ${ipv4.replace(/\./g, '\\.')} is missing on eth0`), 'and names the address');

  await sandbox.exec(containers[1]!.name, 'ip', ['-4', 'route', 'del', 'default']);
  const lostRoute4 = checkFailure(runner, list, attachments[1]!, results[1]!);
  t.equal(lostRoute4?.code, 104, 'CHECK fails once the IPv4 default route is removed');
  t.match(lostRoute4?.msg, `route to 0.0.0.0/0 via ${gateway4} is missing`, 'and names the route');

  await sandbox.exec(containers[2]!.name, 'ip', ['-6', 'route', 'del', 'default']);
  const lostRoute6 = checkFailure(runner, list, attachments[2]!, results[2]!);
  t.equal(lostRoute6?.code, 104, 'CHECK fails once the IPv6 default route is removed');
  t.match(lostRoute6?.msg, `route to ::/0 via ${gateway6} is missing`, 'and names the route');

  const hostVeth = resultHostVeth(results[3]);
  await sandbox.inNode('ip', ['link', 'del', hostVeth]);
  const lostVeth = checkFailure(runner, list, attachments[3]!, results[3]!);
  t.equal(lostVeth?.code, 104, 'CHECK fails once the veth is gone');
  t.match(lostVeth?.msg, `host veth ${hostVeth} is missing`, 'and names the host veth');

  t.equal(checkFailure(runner, list, attachments[0]!, results[0]!)?.code, 104, 'a failed CHECK changes nothing: it fails again');
});

t.test('CHECK without prevResult fails', async (t) => {
  const sandbox = await Sandbox.create(t);
  const entry = bridgeEntry(sandbox);
  const container = await sandbox.addContainer();
  const attachment = sandbox.attachment(container);
  const added = await invoke(sandbox, 'trestle-bridge', call('ADD', attachment), pluginConfig(sandbox, entry, '1.0.0'));
  t.equal(added.exitCode, 0, describe(added));
  const outcome = await invoke(sandbox, 'trestle-bridge', call('CHECK', attachment), pluginConfig(sandbox, entry, '1.0.0'));
  t.not(outcome.exitCode, 0, 'CHECK exits non-zero');
  t.equal(outcome.json?.['code'], 7, 'as an invalid configuration');
  t.match(outcome.json?.['msg'], /prevResult/, 'naming the missing prevResult');
});
