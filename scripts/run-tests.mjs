// Runs the tap suite and ends with the plain "N passed, N failed" line CI reads.
import { spawn } from 'node:child_process';

const child = spawn('npx', ['--no-install', 'tap', ...process.argv.slice(2)], { stdio: ['ignore', 'pipe', 'inherit'] });
let tail = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  tail = (tail + chunk.toString()).slice(-4096);
});
child.on('close', (code) => {
  const summary = /# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?(?:, skip: (\d+))?/.exec(tail);
  const passed = Number(summary?.[2] ?? 0);
  const failed = Number(summary?.[3] ?? 0) + (summary ? 0 : 1);
  const skipped = Number(summary?.[4] ?? 0);
  process.stdout.write(`\n${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}\n`);
  process.exit(code === 0 && failed === 0 ? 0 : 1);
});
