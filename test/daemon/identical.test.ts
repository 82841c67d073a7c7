// The client passes the daemon's answer through unchanged: every protocol case gives the
// same stdout bytes and exit status through the daemon as one-shot (the same client with
// nothing listening on its socket). Only the random MACs and veth names of successful
// results differ between two real ADDs.
import { join } from 'node:path';
import t from 'tap';
import type { Attachment } from '../../src/runtime/chain.js';
import { defaultChain, hostPorts, leftovers, nothing, difference, pluginInput, type Json } from '../helpers/faults.js';
import { addChain, bareSandbox, cniEnv, cniErrorCode, delChain, describeReply, runClient, served, startDaemon, type ClientCall, type Reply } from '../helpers/daemon.js';

function normalise(stdout: Buffer): string {
  return stdout
    .toString('latin1')
    .replace(/"mac":"[0-9a-f:]{17}"/g, '"mac":"<mac>"')
    .replace(/"veth[0-9a-f]{8}"/g, '"<veth>"');
}

t.test('stdout bytes and exit status are the same through the daemon and one-shot', async (t) => {
  const sandbox = await bareSandbox(t);
  const socket = sandbox.socketPath;
  const nowhere = join(sandbox.dir, 'nobody-listens.sock');
  await startDaemon(t, sandbox);
  const list = defaultChain(sandbox);
  const [bridge, portmap] = list.plugins as [Json, Json];
  const hostLocal: Json = { cniVersion: list.cniVersion, name: list.name, type: 'trestle-host-local', ipam: bridge['ipam'] };
  const inputs: Record<string, Json> = { 'trestle-bridge': pluginInput(list, bridge, undefined), 'trestle-host-local': hostLocal, 'trestle-portmap': pluginInput(list, portmap, undefined) };
  let daemonCalls = 0;

  // One call both ways; `expect` is the CNI error code (or 0) the case is about.
  const both = async (name: string, call: ClientCall, expect: number, options: { normalise?: boolean } = {}): Promise<Reply> => {
    const viaDaemon = await runClient(sandbox, { ...call, env: { ...call.env, TRESTLE_SOCKET: socket } });
    daemonCalls++;
    const oneShot = await runClient(sandbox, { ...call, env: { ...call.env, TRESTLE_SOCKET: nowhere } });
    const text = (reply: Reply) => (options.normalise ? normalise(reply.stdout) : reply.stdout.toString('latin1'));
    t.equal(expect === 0 ? oneShot.exitCode : cniErrorCode(oneShot), expect, `${name}: ${expect === 0 ? 'succeeds' : `answers ${expect}`} (${describeReply(oneShot).slice(0, 200)})`);
    t.equal(viaDaemon.exitCode, oneShot.exitCode, `${name}: the same exit status`);
    t.equal(text(viaDaemon), text(oneShot), `${name}: the same stdout bytes`);
    return viaDaemon;
  };

  const [first, second, third] = await Promise.all([sandbox.addContainer(), sandbox.addContainer(), sandbox.addContainer()]);
  const idle = sandbox.attachment(first!);
  for (const type of Object.keys(inputs)) {
    const input = JSON.stringify(inputs[type]);
    await both(`${type} VERSION with a configuration`, { type, env: { CNI_COMMAND: 'VERSION' }, input: JSON.stringify({ cniVersion: '0.4.0' }) }, 0);
    await both(`${type} VERSION without stdin`, { type, env: { CNI_COMMAND: 'VERSION' } }, 0);
    await both(`${type} without CNI_COMMAND`, { type, env: {}, input }, 4);
    await both(`${type} unknown CNI_COMMAND`, { type, env: { CNI_COMMAND: 'UPGRADE' }, input }, 4);
    await both(`${type} ADD without CNI_CONTAINERID`, { type, env: { ...cniEnv('ADD', '', idle), CNI_CONTAINERID: undefined }, input }, 4);
    await both(`${type} ADD without CNI_NETNS`, { type, env: { ...cniEnv('ADD', '', idle), CNI_NETNS: undefined }, input }, 4);
    await both(`${type} DEL without CNI_IFNAME`, { type, env: { ...cniEnv('DEL', '', idle), CNI_IFNAME: undefined }, input }, 4);
    await both(`${type} ADD with bad JSON`, { type, env: cniEnv('ADD', '', idle), input: '{"cniVersion": "1.1.0", "name": ' }, 6);
    await both(`${type} ADD with an empty stdin`, { type, env: cniEnv('ADD', '', idle) }, 6);
    await both(`${type} ADD of an unknown version`, { type, env: cniEnv('ADD', '', idle), input: JSON.stringify({ ...inputs[type], cniVersion: '9.9.9' }) }, 1);
  }
  await both('trestle-bridge ADD with vlan (not implemented)', { type: 'trestle-bridge', env: cniEnv('ADD', '', idle), input: JSON.stringify({ ...inputs['trestle-bridge'], vlan: 5 }) }, 2);
  await both('trestle-host-local ADD without ranges', { type: 'trestle-host-local', env: cniEnv('ADD', '', idle), input: JSON.stringify({ ...hostLocal, ipam: { type: 'trestle-host-local', dataDir: sandbox.dataDir } }) }, 7);
  await both(
    'trestle-portmap ADD with a bad host port',
    { type: 'trestle-portmap', env: cniEnv('ADD', '', idle), input: JSON.stringify({ ...inputs['trestle-portmap'], runtimeConfig: { portMappings: [{ hostPort: 'x', containerPort: 80, protocol: 'tcp' }] } }) },
    7,
  );
  await both('trestle-bridge STATUS', { type: 'trestle-bridge', env: cniEnv('STATUS', ''), input: JSON.stringify(inputs['trestle-bridge']) }, 0);

  // A whole life, once through the daemon and once one-shot, on the same container and
  // (pinned) address: ADD, CHECK, DEL, each plugin's stdout compared.
  const pinned = sandbox.attachment(second!, { cniArgs: 'IgnoreUnknown=1;IP=10.77.0.50', capabilities: { portMappings: hostPorts(8500) } });
  const life = async (socketPath: string): Promise<Buffer[]> => {
    const outputs: Buffer[] = [];
    let result: Json | undefined;
    for (const plugin of list.plugins) {
      const reply = await runClient(sandbox, { type: plugin['type'] as string, env: cniEnv('ADD', socketPath, pinned), input: JSON.stringify(pluginInput(list, plugin, pinned, result)) });
      t.equal(reply.exitCode, 0, `ADD ${plugin['type'] as string} succeeds: ${describeReply(reply).slice(0, 300)}`);
      outputs.push(reply.stdout);
      result = reply.json;
    }
    for (const plugin of list.plugins) outputs.push((await runClient(sandbox, { type: plugin['type'] as string, env: cniEnv('CHECK', socketPath, pinned), input: JSON.stringify(pluginInput(list, plugin, pinned, result)) })).stdout);
    for (const plugin of [...list.plugins].reverse()) outputs.push((await runClient(sandbox, { type: plugin['type'] as string, env: cniEnv('DEL', socketPath, pinned), input: JSON.stringify(pluginInput(list, plugin, pinned, result)) })).stdout);
    return outputs;
  };
  const daemonLife = await life(socket);
  daemonCalls += daemonLife.length;
  const oneShotLife = await life(nowhere);
  const steps = ['ADD trestle-bridge', 'ADD trestle-portmap', 'CHECK trestle-bridge', 'CHECK trestle-portmap', 'DEL trestle-portmap', 'DEL trestle-bridge'];
  steps.forEach((step, index) => t.equal(normalise(daemonLife[index]!), normalise(oneShotLife[index]!), `${step}: the same stdout bytes (MACs and veth names aside)`));
  t.match(daemonLife[0]!.toString('utf8'), /"address":"10\.77\.0\.50\/16"/, 'the pinned address was used');

  // A CHECK that finds the container's address and its port mapping gone (104), and a
  // host port another container holds (102).
  const holder = sandbox.attachment(third!, { capabilities: { portMappings: hostPorts(8501) } });
  const held = await addChain(sandbox, list, holder, { socket });
  t.ok(held.result, `a container holds port 8501${held.failure ? `: ${describeReply(held.failure.reply)}` : ''}`);
  daemonCalls += list.plugins.length;
  await sandbox.exec(third!.name, 'ip', ['addr', 'flush', 'dev', 'eth0']);
  await sandbox.inNode('nft', ['delete', 'element', 'inet', 'trestle', 'hp_any4', '{ tcp . 8501 }']);
  for (const plugin of list.plugins) {
    const type = plugin['type'] as string;
    await both(`${type} CHECK of a broken attachment`, { type, env: cniEnv('CHECK', '', holder), input: JSON.stringify(pluginInput(list, plugin, holder, held.result)) }, 104);
  }
  const contender: Attachment = sandbox.attachment(first!, { capabilities: { portMappings: hostPorts(8501) } });
  const bridged = await runClient(sandbox, { type: 'trestle-bridge', env: cniEnv('ADD', socket, contender), input: JSON.stringify(pluginInput(list, bridge, contender)) });
  daemonCalls++;
  t.equal(bridged.exitCode, 0, 'a second container is bridged');
  await both('trestle-portmap ADD of a host port another container holds', { type: 'trestle-portmap', env: cniEnv('ADD', '', contender), input: JSON.stringify(pluginInput(list, portmap, contender, bridged.json)) }, 102);

  for (const attachment of [holder, contender]) {
    const deleted = await delChain(sandbox, list, attachment, { socket });
    t.notOk(deleted.failure, `DEL succeeds${deleted.failure ? `: ${describeReply(deleted.failure.reply)}` : ''}`);
    daemonCalls += list.plugins.length;
  }
  await both('trestle-bridge GC with no valid attachment', { type: 'trestle-bridge', env: cniEnv('GC', ''), input: JSON.stringify({ ...inputs['trestle-bridge'], 'cni.dev/valid-attachments': [] }) }, 0);
  t.equal(await served(socket), daemonCalls, 'the daemon served every call sent to it');
  t.same(difference(nothing, await leftovers(sandbox, list)), [], 'nothing is left');
});
