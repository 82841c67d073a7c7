// The launcher's code cache must never run old bytecode against a rebuilt bundle,
// even one of exactly the same length (V8 checks only the length).
import { mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
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

// `trestle daemon`'s cache: its own file, rewritten at exit only when the daemon has
// compiled more than the cache it started from held.
t.test('a daemon keeps the largest cache it has written', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'trestle-launcher-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bundle = join(dir, 'program.cjs');
  const runner = join(dir, 'runner.cjs');
  // Many small functions, of which a run compiles (calls) as many as it is told.
  const functions = Array.from({ length: 200 }, (_, index) => `function f${index}(x){return x.map((y)=>y*${index}+1).join(",")}`);
  writeFileSync(bundle, `${functions.join('\n')}\nconst fs=[${functions.map((_, index) => `f${index}`).join(',')}];for(const f of fs.slice(0,Number(process.env.CALLS)))f([1,2]);`);
  writeFileSync(runner, `require(${JSON.stringify(launcher)}).launch(${JSON.stringify(bundle)});`);
  const environment = { ...process.env };
  delete environment['CNI_COMMAND'];
  const daemon = (calls: number) => execFileSync(process.execPath, [runner, 'daemon'], { env: { ...environment, CALLS: String(calls) } });
  const cacheSize = (role: string): number => {
    const names = readdirSync(dir).filter((name) => name.startsWith(`program.cjs.${role}.`) && name.endsWith('.cache'));
    return names.length === 1 ? statSync(join(dir, names[0] as string)).size : -names.length;
  };
  daemon(5);
  const first = cacheSize('DAEMON');
  t.ok(first > 0, 'the first daemon wrote a cache');
  daemon(150);
  const larger = cacheSize('DAEMON');
  t.ok(larger > first, `a daemon that compiled more rewrote it (${first} → ${larger} bytes)`);
  daemon(5);
  t.equal(cacheSize('DAEMON'), larger, 'a daemon that compiled less left it');
  execFileSync(process.execPath, [runner, 'status'], { env: { ...environment, CALLS: '1' } });
  t.ok(cacheSize('CLI') > 0, 'another command wrote a cache of its own');
  t.equal(cacheSize('DAEMON'), larger, 'without touching the daemon’s');
});
