// Nothing a runtime or a configuration passes can make the store write outside dataDir.
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import t from 'tap';
import { attachCall, invoke, network, storeIdle, tempDir, trestleHostLocal as plugin, type Call, type Json } from '../helpers/host-local.js';

// Every path under `root`, so a test can see whether anything appeared.
function tree(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      found.push(relative(root, path));
      if (statSync(path).isDirectory()) walk(path);
    }
  };
  walk(root);
  return found.sort();
}

t.test('hostile names and IDs are rejected and write nothing', async (t) => {
  const root = tempDir(t);
  const dataDir = join(root, 'data', 'networks');
  mkdirSync(dataDir, { recursive: true });
  const before = tree(root);
  const etcBefore = readdirSync('/etc').sort();

  const cases: Array<[string, Call, Json, number]> = [];
  for (const name of ['../x', '..', '.', '../../etc', 'a/../../b', '/abs', 'x/y', '.hidden', 'a\nb']) {
    for (const command of ['ADD', 'DEL'] as const) cases.push([`${command} name ${JSON.stringify(name)}`, attachCall(command, { containerId: 'c1' }), network(dataDir, { name }), 7]);
  }
  for (const containerId of ['../../etc', '../x', '..', '.', 'a/b', '/etc/passwd', '.x']) {
    for (const command of ['ADD', 'DEL'] as const) cases.push([`${command} container ID ${JSON.stringify(containerId)}`, attachCall(command, { containerId }), network(dataDir), 4]);
  }
  for (const ifname of ['../../x', 'eth0/..', '..']) {
    cases.push([`ifname ${JSON.stringify(ifname)}`, attachCall('ADD', { containerId: 'c1', ifname }), network(dataDir), 4]);
  }
  for (const request of ['IP=../../etc/passwd', 'IP=10.10.0.5/../../../x']) {
    cases.push([`CNI_ARGS ${request}`, attachCall('ADD', { containerId: 'c1', cniArgs: request }), network(dataDir), 7]);
  }
  cases.push(['args.cni.ips path', attachCall('ADD', { containerId: 'c1' }), network(dataDir, { extra: { args: { cni: { ips: ['../../../tmp/x'] } } } }), 7]);
  cases.push(['runtimeConfig.ips path', attachCall('ADD', { containerId: 'c1' }), network(dataDir, { extra: { runtimeConfig: { ips: ['/etc/passwd'] } } }), 7]);
  for (const command of ['STATUS', 'GC']) {
    const conf = network(dataDir, { name: '../escape', extra: { 'cni.dev/valid-attachments': [] } });
    cases.push([`${command} name "../escape"`, { command, cniPath: '/usr/lib/cni' }, conf, 7]);
  }

  for (const [what, call, conf, code] of cases) {
    const outcome = await invoke(plugin, call, conf);
    t.equal(outcome.json?.['code'], code, `${what} → code ${code}`);
  }
  t.strictSame(tree(root), before, 'nothing was created anywhere under the test root');
  t.strictSame(readdirSync('/etc').sort(), etcBefore, 'nothing was created in /etc');
});

t.test('a valid call writes only inside <dataDir>/<network>', async (t) => {
  const root = tempDir(t);
  const dataDir = join(root, 'networks');
  const outcome = await invoke(plugin, attachCall('ADD', { containerId: 'ok-1' }), network(dataDir, { name: 'net.ok_1' }));
  t.equal(outcome.exitCode, 0);
  await storeIdle(join(dataDir, 'net.ok_1'));
  t.strictSame(tree(root), ['networks', 'networks/net.ok_1', 'networks/net.ok_1/10.10.0.2', 'networks/net.ok_1/last_reserved_ip.0']);
});
