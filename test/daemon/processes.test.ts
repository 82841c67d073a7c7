// Resident mode starts no process per call (issue 11): the default chain (trestle-bridge
// with trestle-host-local IPAM and ipMasq, then trestle-portmap with one tcp host port)
// through a daemon in a sandbox node namespace, every ADD, CHECK, GC and DEL made by the
// native clients as a runtime makes them. strace follows the daemon (attached to all its
// threads and whatever they fork) and, separately, each client: every successful execve
// after the client's own counts against the call it happened in. Expected: 0 for each
// plugin and command.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Attachment } from '../../src/runtime/chain.js';
import { defaultChain, difference, gcInput, leftovers, nothing, pluginInput, type Json } from '../helpers/faults.js';
import { bareSandbox, cniEnv, describeReply, runClient, served, startDaemon } from '../helpers/daemon.js';
import { attachTracer, readExecs, tracedPrefix, type Exec } from './lib/exec-trace.js';

type Plugin = 'trestle-bridge' | 'trestle-host-local' | 'trestle-portmap';
type Command = 'ADD' | 'CHECK' | 'GC' | 'DEL';

interface Call {
  plugin: Plugin;
  command: Command;
  what: string;
  // Wall clock (s) when the test started the client: the daemon's execs from then
  // until the next call started are this call's.
  startedAt: number;
  clientTrace: string;
}

const tcpPort = (hostPort: number) => [{ hostPort, containerPort: 80, protocol: 'tcp' }];

t.test('processes started per call of the default chain through a daemon: none', async (t) => {
  const sandbox = await bareSandbox(t);
  const socket = sandbox.socketPath;
  const daemon = await startDaemon(t, sandbox);
  const traces = mkdtempSync(join(tmpdir(), `trestle-exec-${sandbox.id}-`));
  t.teardown(() => rmSync(traces, { recursive: true, force: true }));
  const daemonTrace = join(traces, 'daemon.strace');
  const tracer = await attachTracer(daemon.pid, daemonTrace);
  // Registered after the sandbox's: strace lets go of the daemon before it is killed.
  t.teardown(() => tracer.stop());

  const list = defaultChain(sandbox);
  const [bridge, portmap] = list.plugins as [Json, Json];
  const hostLocal: Json = { cniVersion: list.cniVersion, name: list.name, type: 'trestle-host-local', ipam: bridge['ipam'] };
  const [kept, collected, ipamOnly] = await Promise.all([sandbox.addContainer(), sandbox.addContainer(), sandbox.addContainer()]);
  // `kept` lives through GC; `collected` is not among the valid attachments, so GC
  // removes its veth, reservation and port mapping; `ipamOnly` is host-local's own.
  const keptAttachment = sandbox.attachment(kept!, { capabilities: { portMappings: tcpPort(8080) } });
  const collectedAttachment = sandbox.attachment(collected!, { capabilities: { portMappings: tcpPort(8081) } });
  const ipamAttachment = sandbox.attachment(ipamOnly!);

  const calls: Call[] = [];
  const servedBefore = await served(socket);
  const call = async (plugin: Plugin, command: Command, config: Json, attachment?: Attachment, what = ''): Promise<Json | undefined> => {
    const clientTrace = join(traces, `client-${calls.length}.strace`);
    calls.push({ plugin, command, what, startedAt: Date.now() / 1000, clientTrace });
    const reply = await runClient(sandbox, { type: plugin, env: cniEnv(command, socket, attachment), input: JSON.stringify(config), prefix: tracedPrefix(clientTrace) });
    t.equal(reply.exitCode, 0, `${plugin} ${command}${what}: succeeds${reply.exitCode === 0 ? '' : `: ${describeReply(reply)}`}`);
    return reply.json;
  };

  const addChain = async (attachment: Attachment, what: string): Promise<Json | undefined> => {
    const bridged = await call('trestle-bridge', 'ADD', pluginInput(list, bridge, attachment), attachment, what);
    return call('trestle-portmap', 'ADD', pluginInput(list, portmap, attachment, bridged), attachment, what);
  };
  const keptResult = await addChain(keptAttachment, ' (first container)');
  await addChain(collectedAttachment, ' (second container)');
  const ipamResult = await call('trestle-host-local', 'ADD', hostLocal, ipamAttachment);

  await call('trestle-bridge', 'CHECK', pluginInput(list, bridge, keptAttachment, keptResult), keptAttachment);
  await call('trestle-portmap', 'CHECK', pluginInput(list, portmap, keptAttachment, keptResult), keptAttachment);
  await call('trestle-host-local', 'CHECK', { ...hostLocal, prevResult: ipamResult }, ipamAttachment);

  const valid = [keptAttachment, ipamAttachment];
  await call('trestle-bridge', 'GC', gcInput(list, bridge, valid), undefined, ' (collects the second container)');
  await call('trestle-portmap', 'GC', gcInput(list, portmap, valid), undefined, ' (collects the second container)');
  await call('trestle-host-local', 'GC', { ...hostLocal, 'cni.dev/valid-attachments': valid.map((entry) => ({ containerID: entry.containerId, ifname: entry.ifname })) });

  await call('trestle-portmap', 'DEL', pluginInput(list, portmap, keptAttachment, keptResult), keptAttachment);
  await call('trestle-bridge', 'DEL', pluginInput(list, bridge, keptAttachment, keptResult), keptAttachment);
  await call('trestle-host-local', 'DEL', hostLocal, ipamAttachment);
  // A child the daemon started for the last call may still be exec'ing.
  await new Promise((resolve) => setTimeout(resolve, 200));

  t.equal((await served(socket)) - servedBefore, calls.length, 'the daemon served every call (no client fell back to one-shot)');
  t.same(difference(nothing, await leftovers(sandbox, list)), [], 'nothing is left');
  // The controls that make a 0 mean something: strace still held every thread of the
  // daemon, and saw each client's own exec.
  t.strictSame(tracer.untraced(), [], 'strace traced every thread of the daemon to the end');
  await tracer.stop();
  t.ok(
    calls.every((entry) => readExecs(entry.clientTrace).length >= 1),
    'strace saw each client start',
  );

  const daemonExecs = readExecs(daemonTrace);
  const before = daemonExecs.filter((exec) => exec.at < (calls[0]?.startedAt ?? Infinity));
  if (before.length > 0) t.comment(`before the first call the daemon started: ${before.map((exec) => exec.program).join(', ')}`);
  const byCall = new Map<string, { count: number; programs: string[]; calls: number }>();
  for (const [index, entry] of calls.entries()) {
    const until = calls[index + 1]?.startedAt ?? Infinity;
    const fromDaemon = daemonExecs.filter((exec) => exec.at >= entry.startedAt && exec.at < until);
    // The first exec in the client's trace is the client itself, run by the test.
    const fromClient = readExecs(entry.clientTrace).slice(1);
    const started: Exec[] = [...fromClient, ...fromDaemon];
    const key = `${entry.plugin} ${entry.command}`;
    const tally = byCall.get(key) ?? { count: 0, programs: [], calls: 0 };
    tally.count += started.length;
    tally.calls += 1;
    tally.programs.push(...started.map((exec) => exec.program));
    byCall.set(key, tally);
  }
  const summary: string[] = [];
  for (const plugin of ['trestle-bridge', 'trestle-host-local', 'trestle-portmap'] as const) {
    for (const command of ['ADD', 'CHECK', 'GC', 'DEL'] as const) {
      const tally = byCall.get(`${plugin} ${command}`);
      if (!tally) continue;
      const programs = tally.programs.length === 0 ? 'none' : Object.entries(countNames(tally.programs)).map(([name, count]) => `${name} ×${count}`).join(', ');
      summary.push(`${plugin} ${command}: ${tally.count} in ${tally.calls} call(s) (${programs})`);
      t.equal(tally.count, 0, `${plugin} ${command} starts no process: ${tally.count} in ${tally.calls} call(s): ${programs}`);
    }
  }
  t.comment(`processes started, per plugin and command:\n${summary.join('\n')}`);
});

function countNames(names: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of names) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
}
