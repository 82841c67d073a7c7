import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

// A deleted network namespace is torn down by a kernel worker after `ip netns del`
// returns, and keeps a CPU busy for a while: timing during that measures the kernel's
// cleanup, not the plugin. Waits until the whole machine has been nearly idle twice
// in a row, or gives up after `timeoutMs` (other work on the VM may never stop).
interface CpuTimes {
  idle: number;
  total: number;
}

function cpuTimes(): CpuTimes {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: idle and iowait are not work.
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  const total = fields.slice(0, 8).reduce((sum, value) => sum + value, 0);
  return { idle, total };
}

// How many waits gave up: the report says so, since its numbers are then noisier.
export let unsettled = 0;

export interface SettleOutcome {
  waitedMs: number;
  settled: boolean;
}

export async function settleCpu(options: { busyBelow?: number; sampleMs?: number; timeoutMs?: number } = {}): Promise<SettleOutcome> {
  const busyBelow = options.busyBelow ?? 0.1;
  const sampleMs = options.sampleMs ?? 300;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const started = performance.now();
  let quiet = 0;
  let previous = cpuTimes();
  while (performance.now() - started < timeoutMs) {
    await sleep(sampleMs);
    const current = cpuTimes();
    const total = current.total - previous.total;
    const busy = total > 0 ? 1 - (current.idle - previous.idle) / total : 0;
    previous = current;
    quiet = busy < busyBelow ? quiet + 1 : 0;
    if (quiet >= 2) return { waitedMs: performance.now() - started, settled: true };
  }
  unsettled += 1;
  return { waitedMs: performance.now() - started, settled: false };
}
