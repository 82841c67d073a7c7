// Counters for `trestle daemon status` and the Prometheus text at /metrics.
const buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

export interface PoolUsage {
  network: string;
  inUse: number;
  free: number;
}

function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export class Metrics {
  readonly startedAt = Date.now();
  served = 0;
  inFlight = 0;
  private readonly requests = new Map<string, number>();
  private readonly durations = new Map<string, Histogram>();

  record(plugin: string, command: string, code: number, seconds: number): void {
    this.served++;
    const key = `${plugin}|${command}|${code}`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    let histogram = this.durations.get(command);
    if (!histogram) {
      histogram = { counts: buckets.map(() => 0), sum: 0, count: 0 };
      this.durations.set(command, histogram);
    }
    buckets.forEach((bound, i) => {
      if (seconds <= bound) (histogram as Histogram).counts[i] = ((histogram as Histogram).counts[i] ?? 0) + 1;
    });
    histogram.sum += seconds;
    histogram.count++;
  }

  render(pools: readonly PoolUsage[]): string {
    const lines: string[] = [
      '# HELP trestle_requests_total CNI calls answered, by plugin, command and result code (0: success).',
      '# TYPE trestle_requests_total counter',
    ];
    for (const [key, value] of this.requests) {
      const [plugin = '', command = '', code = ''] = key.split('|');
      lines.push(`trestle_requests_total{plugin="${label(plugin)}",command="${label(command)}",code="${code}"} ${value}`);
    }
    lines.push('# HELP trestle_request_duration_seconds Time to answer a CNI call.', '# TYPE trestle_request_duration_seconds histogram');
    for (const [command, histogram] of this.durations) {
      buckets.forEach((bound, i) => lines.push(`trestle_request_duration_seconds_bucket{command="${label(command)}",le="${bound}"} ${histogram.counts[i] ?? 0}`));
      lines.push(`trestle_request_duration_seconds_bucket{command="${label(command)}",le="+Inf"} ${histogram.count}`);
      lines.push(`trestle_request_duration_seconds_sum{command="${label(command)}"} ${histogram.sum}`);
      lines.push(`trestle_request_duration_seconds_count{command="${label(command)}"} ${histogram.count}`);
    }
    lines.push('# HELP trestle_requests_in_flight CNI calls being answered now.', '# TYPE trestle_requests_in_flight gauge', `trestle_requests_in_flight ${this.inFlight}`);
    lines.push('# HELP trestle_addresses_in_use Addresses reserved in a host-local store this daemon has served.', '# TYPE trestle_addresses_in_use gauge');
    for (const pool of pools) lines.push(`trestle_addresses_in_use{network="${label(pool.network)}"} ${pool.inUse}`);
    lines.push('# HELP trestle_addresses_free Addresses still free in those ranges.', '# TYPE trestle_addresses_free gauge');
    for (const pool of pools) lines.push(`trestle_addresses_free{network="${label(pool.network)}"} ${pool.free}`);
    return `${lines.join('\n')}\n`;
  }
}
