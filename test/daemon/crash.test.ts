// SIGKILL of the daemon in the middle of 50 parallel ADDs of the default chain (bridge
// with host-local, portmap with one host port each): every ADD either succeeded or
// answered one CNI error (11 for the calls cut off), and after the runtime's DELs, half
// through the one-shot fallback and half through a restarted daemon, and its GC, nothing
// is left.
import t from 'tap';
import { ageTempFiles, chainGc, defaultChain, difference, killPlugin, leftovers, nothing, sleep } from '../helpers/faults.js';
import { addChain, bareSandbox, cniErrorCode, delChain, describeReply, served, startDaemon, type ChainOutcome } from '../helpers/daemon.js';

const containers = 50;
// How long the daemon runs between its two stops: long enough for some chains.
const runningMs = 60;

t.test('SIGKILL of the daemon during 50 parallel ADDs; the DELs leave nothing', async (t) => {
  const sandbox = await bareSandbox(t);
  const socket = sandbox.socketPath;
  const daemon = await startDaemon(t, sandbox);
  const list = defaultChain(sandbox);
  const namespaces = [];
  for (let index = 0; index < containers; index++) namespaces.push(await sandbox.addContainer());
  const attachments = namespaces.map((container, index) =>
    sandbox.attachment(container, { capabilities: { portMappings: [{ hostPort: 9000 + index, containerPort: 80, protocol: 'tcp' }] } }),
  );

  // The daemon answers a call in a few ms, faster than this test starts clients. So it
  // is stopped while the 50 chains start and connect, runs for a moment (some calls are
  // answered), is stopped again while more calls arrive, and is then killed: the calls
  // it holds or has not accepted yet are cut off.
  process.kill(daemon.pid, 'SIGSTOP');
  let finished = 0;
  const adds = attachments.map((attachment) =>
    addChain(sandbox, list, attachment, { socket }).then((outcome) => {
      finished++;
      return outcome;
    }),
  );
  await sleep(1_000);
  process.kill(daemon.pid, 'SIGCONT');
  await sleep(runningMs);
  process.kill(daemon.pid, 'SIGSTOP');
  await sleep(300);
  // (killPlugin stops it again, so that any child it started is listed without a race:
  // it runs the default chain in-process and starts none.)
  const orphans = killPlugin(daemon.pid);
  t.equal(finished < containers, true, `killed with ADDs in flight (${containers - finished} chains unfinished)`);
  t.strictSame(orphans, [], 'the killed daemon left no process running');
  await daemon.exited;

  const outcomes: ChainOutcome[] = await Promise.all(adds);
  const codes = new Map<number, number>();
  for (const [index, outcome] of outcomes.entries()) {
    if (outcome.result) continue;
    const failure = outcome.failure!;
    const code = cniErrorCode(failure.reply);
    t.not(failure.reply.exitCode, 0, `container ${index}: a failed ${failure.plugin} ADD exits non-zero`);
    t.not(code, undefined, `container ${index}: and prints one CNI error object: ${describeReply(failure.reply)}`);
    codes.set(code ?? -1, (codes.get(code ?? -1) ?? 0) + 1);
  }
  const succeeded = outcomes.filter((outcome) => outcome.result).length;
  t.ok((codes.get(11) ?? 0) >= 1, `calls were cut off and answered 11: ${succeeded} chains succeeded, failures by code ${JSON.stringify([...codes])}`);
  t.same([...codes.keys()], codes.size === 0 ? [] : [11], 'every failure is code 11 (try again later)');
  for (const outcome of outcomes) {
    if (outcome.result) t.equal((outcome.result['ips'] as unknown[]).length, 1, 'a successful chain has its address');
  }

  const left = await leftovers(sandbox, list);
  t.comment(`before the DELs: ${left.reservations.length} reservations, ${left.veths.length} veths, ${left.elements.length} nft elements, ${left.stateFiles.length} state files, ${left.tempFiles.length} temp files`);

  // The runtime deletes every container: the first half while no daemon runs (the
  // socket is stale), the rest through a daemon started again on the same path.
  const half = containers / 2;
  const oneShot = await Promise.all(attachments.slice(0, half).map((attachment) => delChain(sandbox, list, attachment, { socket })));
  for (const outcome of oneShot) t.notOk(outcome.failure, `DEL one-shot succeeds${outcome.failure ? `: ${describeReply(outcome.failure.reply)}` : ''}`);
  await startDaemon(t, sandbox);
  const resident = await Promise.all(attachments.slice(half).map((attachment) => delChain(sandbox, list, attachment, { socket })));
  for (const outcome of resident) t.notOk(outcome.failure, `DEL through the restarted daemon succeeds${outcome.failure ? `: ${describeReply(outcome.failure.reply)}` : ''}`);
  t.equal(await served(socket), half * list.plugins.length, 'the restarted daemon served its half of the DELs');
  // A call killed between writing a record's temporary file and linking it leaves that
  // file: debris only GC removes, once older than its grace period (aged here).
  ageTempFiles(sandbox);
  await chainGc(sandbox, list, []);
  t.same(difference(nothing, await leftovers(sandbox, list)), [], 'no reservation, veth, nft element, state file or temp file is left after the runtime\'s GC');
});
