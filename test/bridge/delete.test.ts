// DEL succeeds whatever is already gone, and leaves neither an address reserved nor a
// veth on the node: after the namespace was deleted or unmounted, with an empty
// CNI_NETNS, when repeated, without prevResult, and for a container never added.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import t, { type Test } from 'tap';
import type { Attachment } from '../../src/runtime/chain.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { bridgeEntry, call, describe, invoke, isStoreBookkeeping, networkName, pluginConfig, reservations, resultAddresses, resultHostVeth, veths, type Json } from '../helpers/bridge.js';

const version = '1.0.0';

async function added(t: Test, sandbox: Sandbox, entry: Json, attachment: Attachment): Promise<{ result: Json; addresses: string[]; hostVeth: string }> {
  const outcome = await invoke(sandbox, 'trestle-bridge', call('ADD', attachment), pluginConfig(sandbox, entry, version));
  t.equal(outcome.exitCode, 0, `ADD succeeds (${describe(outcome)})`);
  const result = outcome.json ?? {};
  return { result, addresses: resultAddresses(result), hostVeth: resultHostVeth(result) };
}

t.test('DEL succeeds and cleans up whatever is already gone', async (t) => {
  const sandbox = await Sandbox.create(t);
  const entry = bridgeEntry(sandbox, { dualStack: true, bridge: { ipMasq: true } });
  const config = pluginConfig(sandbox, entry, version);
  const del = async (attachment: Attachment, what: string, overrides: { netns?: string; prevResult?: Json } = {}) => {
    const request = call('DEL', attachment, overrides.netns === undefined ? {} : { netns: overrides.netns });
    const body = overrides.prevResult === undefined ? config : { ...config, prevResult: overrides.prevResult };
    const outcome = await invoke(sandbox, 'trestle-bridge', request, body);
    t.equal(outcome.exitCode, 0, `DEL ${what} succeeds (${describe(outcome)})`);
    t.equal(outcome.stdout, '', `DEL ${what} prints nothing`);
  };
  const released = async (attachment: { addresses: string[]; hostVeth: string }, what: string) => {
    const reserved = reservations(sandbox);
    t.notOk(attachment.addresses.some((address) => reserved.includes(address)), `${what}: the addresses are released`);
    t.notOk((await veths(sandbox)).includes(attachment.hostVeth), `${what}: the host veth is gone`);
  };

  const gone = await sandbox.addContainer();
  const goneAttachment = sandbox.attachment(gone);
  const goneState = await added(t, sandbox, entry, goneAttachment);
  const ruleset = async () => String((await sandbox.inNode('nft', ['list', 'ruleset'])).stdout);
  const rulesBefore = await ruleset();
  t.ok(goneState.addresses.every((address) => rulesBefore.includes(address)), 'ADD installed its masquerade entries');
  await execa('ip', ['netns', 'del', gone.name]);
  await del(goneAttachment, 'after the namespace was deleted', { prevResult: goneState.result });
  await released(goneState, 'namespace deleted');
  const rulesAfter = await ruleset();
  t.notOk(goneState.addresses.some((address) => rulesAfter.includes(address)), 'DEL removed its masquerade entries');

  // What a runtime leaves when it crashed between unmounting a namespace and removing
  // its file: the path exists, but it is no namespace any more.
  const unmounted = await sandbox.addContainer();
  const unmountedAttachment = sandbox.attachment(unmounted);
  const unmountedState = await added(t, sandbox, entry, unmountedAttachment);
  await execa('umount', [unmounted.path]);
  await del(unmountedAttachment, 'when the namespace path is a file left behind', { prevResult: unmountedState.result });
  await released(unmountedState, 'namespace file left behind');

  const emptyNetns = await sandbox.addContainer();
  const emptyAttachment = sandbox.attachment(emptyNetns);
  const emptyState = await added(t, sandbox, entry, emptyAttachment);
  await del(emptyAttachment, 'with an empty CNI_NETNS', { netns: '' });
  await released(emptyState, 'empty CNI_NETNS');

  const twice = await sandbox.addContainer();
  const twiceAttachment = sandbox.attachment(twice);
  const twiceState = await added(t, sandbox, entry, twiceAttachment);
  await del(twiceAttachment, 'the first time', { prevResult: twiceState.result });
  await del(twiceAttachment, 'the second time', { prevResult: twiceState.result });
  await released(twiceState, 'DEL twice');

  const bare = await sandbox.addContainer();
  const bareAttachment = sandbox.attachment(bare);
  const bareState = await added(t, sandbox, entry, bareAttachment);
  await del(bareAttachment, 'without prevResult');
  await released(bareState, 'no prevResult');

  const stranger = await sandbox.addContainer();
  await del(sandbox.attachment(stranger), 'of a container that was never added');

  const store = readdirSync(join(sandbox.dataDir, networkName(sandbox)));
  t.strictSame(
    store.filter((name) => !isStoreBookkeeping(name)),
    [],
    `the IPAM store holds only its bookkeeping files (${store.join(', ')})`,
  );
  t.strictSame(await veths(sandbox), [], 'no veth is left on the node');
});
