/**
 * Load generator, run as its own process so that it does not share an event loop with what it measures.
 * argv[2]: JSON LoadSpec. Prints one JSON line (LoadResult) when done. Stops early on "stop" on stdin.
 */
import autocannon from 'autocannon';

export interface LoadSpec {
  url: string;
  method?: 'GET' | 'POST';
  connections: number;
  durationSec: number;
  headers?: Record<string, string>;
  body?: string;
  /** Stop after this many requests (the duration then only bounds the run). */
  amount?: number;
  /** Seconds before a request counts as timed out (autocannon's default: 10). */
  timeoutSec?: number;
  /** Paths requested in turn (e.g. one id after another); default: the url's own path. */
  paths?: string[];
}

export interface LoadResult {
  requests_per_sec: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  mean_ms: number;
  requests: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  duration_s: number;
}

function main(): void {
  const spec = JSON.parse(process.argv[2]!) as LoadSpec;
  const paths = spec.paths ?? [];
  let i = 0;
  const instance = autocannon(
    {
      url: spec.url,
      method: spec.method ?? 'GET',
      connections: spec.connections,
      duration: spec.durationSec,
      headers: spec.headers,
      body: spec.body,
      timeout: spec.timeoutSec ?? 10,
      amount: spec.amount,
      requests: paths.length > 0 ? [{ setupRequest: (req) => ({ ...req, path: paths[i++ % paths.length]! }) }] : undefined,
    },
    (err, r) => {
      if (err) {
        process.stderr.write(`load: ${err.message}\n`);
        process.exit(1);
      }
      const out: LoadResult = {
        requests_per_sec: r.requests.total / r.duration,
        p50_ms: r.latency.p50,
        p90_ms: r.latency.p90,
        p99_ms: r.latency.p99,
        mean_ms: r.latency.average,
        requests: r.requests.total,
        non2xx: r.non2xx,
        errors: r.errors,
        timeouts: r.timeouts,
        duration_s: r.duration,
      };
      process.stdout.write(JSON.stringify(out) + '\n');
      process.exit(0);
    },
  );
  process.stdin.setEncoding('utf8').on('data', (d: string) => {
    if (d.includes('stop')) instance.stop();
  });
}

main();
