// Runs the tap suite and ends with the plain "N passed, N failed" line CI reads.
// Without arguments: every test one-shot (the plugins as Node processes), then the
// plugin and runtime suites again in resident mode (TRESTLE_TEST_MODE=daemon: each
// sandbox starts `trestle daemon` and the native clients forward to it). With
// arguments: those tests, once, in the mode the environment says.
import { spawn } from 'node:child_process';

const residentSuites = ['test/bridge', 'test/host-local', 'test/portmap', 'test/runtimes'];

function runTap(args, env) {
  return new Promise((resolve) => {
    const child = spawn('npx', ['--no-install', 'tap', ...args], { stdio: ['ignore', 'pipe', 'inherit'], env });
    let tail = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      tail = (tail + chunk.toString()).slice(-4096);
    });
    child.on('close', (code) => {
      const summary = /# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?(?:, skip: (\d+))?/.exec(tail);
      resolve({
        passed: Number(summary?.[2] ?? 0),
        failed: Number(summary?.[3] ?? 0) + (summary ? 0 : 1),
        skipped: Number(summary?.[4] ?? 0),
        ok: code === 0,
      });
    });
  });
}

const given = process.argv.slice(2);
const passes = given.length > 0 ? [{ args: given, env: process.env }] : [
  { args: [], env: process.env },
  { args: residentSuites, env: { ...process.env, TRESTLE_TEST_MODE: 'daemon' }, label: 'resident mode' },
];
const total = { passed: 0, failed: 0, skipped: 0, ok: true };
for (const pass of passes) {
  if (pass.label) process.stdout.write(`\n# ${pass.label}: ${pass.args.join(' ')}\n`);
  const outcome = await runTap(pass.args, pass.env);
  total.passed += outcome.passed;
  total.failed += outcome.failed;
  total.skipped += outcome.skipped;
  total.ok &&= outcome.ok;
}
process.stdout.write(`\n${total.passed} passed, ${total.failed} failed${total.skipped > 0 ? `, ${total.skipped} skipped` : ''}\n`);
process.exit(total.ok && total.failed === 0 ? 0 : 1);
