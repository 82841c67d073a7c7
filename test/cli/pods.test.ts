// Pod-aware tooling: a Kubernetes runtime's CNI_ARGS name the pod; `trestle ls` shows
// it and filters on it, and `trestle inspect` gives one attachment's whole record with
// each nft element checked against the kernel.
import { join } from 'node:path';
import t from 'tap';
import { Sandbox, trestleBin } from '../../src/sandbox/sandbox.js';
import { natPlugins } from '../helpers/nat.js';

async function trestle(sandbox: Sandbox, args: string[]) {
  const outcome = await sandbox.exec(sandbox.node, join(trestleBin, 'trestle'), [...args, '--data-dir', sandbox.dataDir, '--state-dir', sandbox.stateDir], {
    reject: false,
    env: sandbox.pluginEnvironment(),
  });
  return { exitCode: outcome.exitCode ?? -1, stdout: String(outcome.stdout), stderr: String(outcome.stderr) };
}

t.test('ls and inspect by pod, from the K8S_POD_* arguments a runtime passes', async (t) => {
  const sandbox = await Sandbox.create(t);
  const list = sandbox.conflist(natPlugins(sandbox));
  const runner = sandbox.runner();
  const web = await sandbox.addContainer();
  const db = await sandbox.addContainer();
  const plain = await sandbox.addContainer();
  // The keys come in varying order, as containerd's CRI plugin sends them.
  const webAttachment = sandbox.attachment(web, {
    cniArgs: `K8S_POD_INFRA_CONTAINER_ID=${web.id};K8S_POD_UID=0b5c-uid;IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0`,
    capabilities: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] },
  });
  const dbAttachment = sandbox.attachment(db, { cniArgs: `IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=db-0;K8S_POD_INFRA_CONTAINER_ID=${db.id}` });
  const webResult = runner.add(list, webAttachment);
  const dbResult = runner.add(list, dbAttachment);
  runner.add(list, sandbox.attachment(plain));

  const rows = JSON.parse((await trestle(sandbox, ['ls', '--json'])).stdout) as Array<{ containerId: string; pod?: string }>;
  t.same(
    rows.map((row) => [row.containerId, row.pod]),
    [
      [web.id, 'shop/web-0'],
      [db.id, 'shop/db-0'],
      [plain.id, undefined],
    ],
    'ls shows namespace/pod where the runtime named one',
  );
  const table = await trestle(sandbox, ['ls']);
  t.match(table.stdout, new RegExp(`${web.id}\\s+eth0\\s+shop/web-0\\s+8080->80/tcp`), 'the table has a POD column');
  const filtered = JSON.parse((await trestle(sandbox, ['ls', '--pod', 'shop/db-0', '--json'])).stdout) as Array<{ containerId: string }>;
  t.same(filtered.map((row) => row.containerId), [db.id], '--pod filters on namespace/name');

  const inspected = await trestle(sandbox, ['inspect', 'shop/web-0', '--json']);
  t.equal(inspected.exitCode, 0, 'inspect finds the pod');
  const [record] = JSON.parse(inspected.stdout) as Array<Record<string, any>>;
  t.equal(record?.['containerId'], web.id);
  t.same(record?.['pod'], { namespace: 'shop', name: 'web-0', uid: '0b5c-uid' }, 'the pod, with its UID');
  t.same(record?.['addresses'], (webResult['ips'] as Array<{ address: string }>).map((ip) => ip.address), 'the addresses ADD gave');
  t.equal(record?.['hostVethPresent'], true, 'the host veth is there');
  t.same(record?.['reserved'].map((entry: { reserved: boolean }) => entry.reserved), [true], 'and the reservation');
  t.same(record?.['hostPorts'].map((mapping: { hostPort: number }) => mapping.hostPort), [8080], 'and its host port');
  const elements = record?.['elements'] as Array<{ set: string; key: string; present: boolean }>;
  t.ok(elements.length >= 4 && elements.every((element) => element.present), 'every element it owns is in the kernel');

  // An element removed behind Trestle's back shows as missing.
  const masquerade = elements.find((element) => element.set === 'masq4');
  await sandbox.inNode('nft', ['delete', 'element', 'inet', 'trestle', 'masq4', `{ ${masquerade?.key} }`]);
  const text = await trestle(sandbox, ['inspect', web.id]);
  t.match(text.stdout, new RegExp(`nft element  masq4 \\{ ${masquerade?.key.replaceAll('.', '\\.')} \\} \\(masquerade\\): MISSING`), 'inspect names the missing element');
  t.match(text.stdout, /host port    \*:8080\/tcp -> /, 'and lists the host port');
  t.equal((await trestle(sandbox, ['inspect', 'shop/nobody'])).exitCode, 1, 'an unknown pod: exit 1');

  runner.del(list, dbAttachment, dbResult);
  t.equal((await trestle(sandbox, ['inspect', 'shop/db-0'])).exitCode, 1, 'DEL removes the record');
  // GC keeps the valid attachments' records and drops the rest.
  runner.gc(list, [{ containerId: web.id, ifname: 'eth0' }]);
  t.equal((await trestle(sandbox, ['inspect', plain.id])).exitCode, 1, 'GC removes the record of an attachment that is not valid');
  t.equal((await trestle(sandbox, ['inspect', 'shop/web-0'])).exitCode, 0, 'and keeps the valid one');
  runner.del(list, webAttachment, webResult);
});
