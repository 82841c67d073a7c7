// The daemon's request body: NUL-ended KEY=VALUE entries, then stdin as it is.
import t from 'tap';
import { decodeCall, encodeCall } from '../../src/daemon/wire.js';

t.test('a call decodes to the environment and stdin it was encoded from', async (t) => {
  const stdin = Buffer.from('{"cniVersion":"1.0.0","name":"n\\u0000x"}\0tail');
  const { body, environmentLength } = encodeCall({ CNI_COMMAND: 'ADD', CNI_ARGS: 'IP=10.0.0.2;K8S_POD_NAME=a=b', EMPTY: '', LANG: 'fr_FR.UTF-8 é ü' }, stdin);
  const decoded = decodeCall(body, environmentLength);
  t.strictSame(decoded.environment, { CNI_COMMAND: 'ADD', CNI_ARGS: 'IP=10.0.0.2;K8S_POD_NAME=a=b', EMPTY: '', LANG: 'fr_FR.UTF-8 é ü' });
  t.ok(decoded.stdin.equals(stdin), 'stdin bytes untouched, NUL included');
  t.strictSame(decodeCall(Buffer.from('{}'), 0).environment, {}, 'no environment at all');
});

t.test('entries without "=" are skipped; bad lengths and unended entries are refused', async (t) => {
  t.strictSame(decodeCall(Buffer.from('JUNK\0=x\0A=1\0'), 12).environment, { A: '1' });
  t.throws(() => decodeCall(Buffer.from('A=1\0B=2'), 7), /not NUL-terminated/, 'last entry without its NUL');
  t.throws(() => decodeCall(Buffer.from('A=1\0'), 5), /does not fit/, 'longer than the body');
  t.throws(() => decodeCall(Buffer.from('A=1\0'), -1), /does not fit/);
  t.throws(() => decodeCall(Buffer.from('A=1\0'), 1.5), /does not fit/);
});

t.test('bytes that are not UTF-8 decode as replacement characters, entry by entry', async (t) => {
  const body = Buffer.concat([Buffer.from('A=\xc3', 'latin1'), Buffer.from([0]), Buffer.from('B=2\0')]);
  t.strictSame(decodeCall(body, body.length).environment, { A: '\ufffd', B: '2' });
});
