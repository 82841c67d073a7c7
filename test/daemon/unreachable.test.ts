// A daemon that cannot answer: stopped with SIGSTOP (calls answer 11 within the client's
// bound, never hang, never report a success), and one a non-root caller may not reach.
import { chmodSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import t from 'tap';
import { defaultChain, hostPorts, leftovers, nothing, difference } from '../helpers/faults.js';
import { addChain, bareSandbox, cniEnv, cniErrorCode, delChain, describeReply, runClient, served, startDaemon, status, waitUntil, type Reply } from '../helpers/daemon.js';

const boundMs = 500;

t.test('a stopped daemon: every call answers 11 within the bound, a DEL never reports success', async (t) => {
  const sandbox = await bareSandbox(t);
  const socket = sandbox.socketPath;
  const daemon = await startDaemon(t, sandbox);
  const list = defaultChain(sandbox);
  const [first, second] = await Promise.all([sandbox.addContainer(), sandbox.addContainer()]);
  const added = sandbox.attachment(first!, { capabilities: { portMappings: hostPorts(8300) } });
  const pending = sandbox.attachment(second!, { capabilities: { portMappings: hostPorts(8301) } });
  const setUp = await addChain(sandbox, list, added, { socket });
  t.ok(setUp.result, `a container is added through the running daemon${setUp.failure ? `: ${describeReply(setUp.failure.reply)}` : ''}`);

  const servedBefore = await served(socket);
  process.kill(daemon.pid, 'SIGSTOP');
  let replies: Array<[string, Reply]>;
  try {
    const bound = { TRESTLE_CLIENT_TIMEOUT_MS: String(boundMs) };
    const config = (index: number) => JSON.stringify({ ...list.plugins[index], cniVersion: list.cniVersion, name: list.name });
    const calls: Array<[string, Promise<Reply>]> = [
      ['portmap DEL', runClient(sandbox, { type: 'trestle-portmap', env: cniEnv('DEL', socket, added, bound), input: config(1) })],
      ['bridge DEL', runClient(sandbox, { type: 'trestle-bridge', env: cniEnv('DEL', socket, added, bound), input: config(0) })],
      ['bridge ADD', runClient(sandbox, { type: 'trestle-bridge', env: cniEnv('ADD', socket, pending, bound), input: config(0) })],
      ['host-local VERSION', runClient(sandbox, { type: 'trestle-host-local', env: { CNI_COMMAND: 'VERSION', TRESTLE_SOCKET: socket, ...bound }, input: '{"cniVersion":"0.4.0"}' })],
    ];
    replies = await Promise.all(calls.map(async ([name, reply]) => [name, await reply] as [string, Reply]));
  } finally {
    process.kill(daemon.pid, 'SIGCONT');
  }
  for (const [name, reply] of replies) {
    t.equal(cniErrorCode(reply), 11, `${name} answers one CNI error with code 11: ${describeReply(reply)}`);
    t.equal(reply.exitCode, 1, `${name} exits 1`);
    t.match(reply.json?.['msg'], new RegExp(`did not answer within ${boundMs} ms`), `${name} says why`);
    t.ok(reply.ms >= boundMs && reply.ms < boundMs + 1_000, `${name} answered after ${reply.ms.toFixed(0)} ms (bound ${boundMs} ms)`);
  }
  const version = replies.find(([name]) => name === 'host-local VERSION')?.[1];
  t.equal(version?.json?.['cniVersion'], '0.4.0', "the error is in the configuration's cniVersion");

  // Resumed, the daemon still serves; the runtime's retried DELs finish the job.
  await waitUntil('the resumed daemon is idle', async () => {
    const answer = await status(socket);
    return answer.running && answer.inFlight === 0;
  });
  // The requests sat in the socket's queue: resumed, the daemon may still run them (the
  // client's 11 claimed nothing either way, and DEL is idempotent).
  t.comment(`resumed, the daemon ran ${(await served(socket)) - servedBefore} of the ${replies.length} calls it had not answered`);
  for (const attachment of [added, pending]) {
    const deleted = await delChain(sandbox, list, attachment, { socket });
    t.notOk(deleted.failure, `the retried DEL succeeds${deleted.failure ? `: ${describeReply(deleted.failure.reply)}` : ''}`);
  }
  t.same(difference(nothing, await leftovers(sandbox, list)), [], 'nothing is left');
});

// Prints the connect error's code, or "connected".
const connectProbe = `
const socket = require('node:net').connect(process.argv[1]);
socket.on('connect', () => { console.log('connected'); socket.destroy(); });
socket.on('error', (error) => console.log(error.code));
`;

t.test('only root may connect: the socket is 0600 in a 0700 directory', async (t) => {
  const sandbox = await bareSandbox(t);
  const socket = join(sandbox.dir, 'run', 'trestled.sock');
  await startDaemon(t, sandbox, { socket });
  t.equal(statSync(socket).mode & 0o777, 0o600, 'the socket is 0600');
  t.equal(statSync(dirname(socket)).mode & 0o777, 0o700, 'its directory is 0700');

  const asNobody = async () =>
    String((await sandbox.inNode('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, '-e', connectProbe, socket])).stdout).trim();
  t.equal(await asNobody(), 'EACCES', 'nobody cannot connect');
  // With the directories opened for traversal, the socket's own mode still refuses.
  const modes = [sandbox.dir, dirname(socket)].map((dir) => [dir, statSync(dir).mode & 0o777] as const);
  try {
    for (const [dir] of modes) chmodSync(dir, 0o711);
    t.equal(await asNobody(), 'EACCES', 'nobody cannot connect even where the directory lets it through');
  } finally {
    for (const [dir, mode] of modes) chmodSync(dir, mode);
  }
  const root = await sandbox.inNode(process.execPath, ['-e', connectProbe, socket]);
  t.equal(String(root.stdout).trim(), 'connected', 'root can');
});
