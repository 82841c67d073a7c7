// The launcher's code cache must never run old bytecode against a rebuilt bundle,
// even one of exactly the same length (V8 checks only the length).
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { repoRoot } from '../../src/sandbox/sandbox.js';

const launcher = join(repoRoot, 'dist', 'launch.cjs');

function run(bundle: string): string {
  return execFileSync(process.execPath, ['-e', `require(${JSON.stringify(launcher)}).launch(${JSON.stringify(bundle)})`], {
    env: { ...process.env, CNI_COMMAND: 'ADD' },
    encoding: 'utf8',
  });
}

t.test('a same-length rebuild is run as written, not from the old cache', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'trestle-launcher-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bundle = join(dir, 'program.cjs');
  const program = (word: string) => `function speak(){return ${JSON.stringify(word)}}process.stdout.write(speak());`;
  writeFileSync(bundle, program('first'));
  t.equal(run(bundle), 'first', 'first run');
  t.equal(run(bundle), 'first', 'second run, from the cache');
  t.equal(readdirSync(dir).filter((name) => name.endsWith('.cache')).length, 1, 'one cache was written');

  rmSync(bundle);
  writeFileSync(bundle, program('other'));
  utimesSync(bundle, new Date(), new Date(Date.now() + 5_000));
  t.equal(run(bundle), 'other', 'the rebuilt bundle runs its own code');
});
