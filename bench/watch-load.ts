/**
 * Watcher load generator of the benchmark (bench/watchers.ts), one process apart from the service: opens
 * `count` Server-Sent Event streams of the change feed on loopback (batches of 200 connections at a time) and
 * reads them all. argv[2]: JSON WatchSpec. Prints JSON lines on stdout:
 *   {"ready": n, "failed": f}              once every stream got its first bookmark (or failed to open)
 *   {"rev": r, "last_at": ms, "got": n}    when upsert `r` has reached every open stream (Date.now() of the last)
 *   {"report": {...}}                      on "report" on stdin: streams open, ended by the service, events read
 * Run with a raised descriptor limit (the parent starts it under `ulimit -n`).
 */
import http from 'node:http';

export interface WatchSpec {
  port: number;
  path: string;
  headers: Record<string, string>;
  count: number;
}

const spec = JSON.parse(process.argv[2]!) as WatchSpec;
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
const emit = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

let open = 0;
let ended = 0;
let failed = 0;
let events = 0;
/** Per upsert revision: how many streams got it. */
const got = new Map<number, number>();

function arrived(rev: number): void {
  const n = (got.get(rev) ?? 0) + 1;
  got.set(rev, n);
  if (n === open) {
    emit({ rev, last_at: Date.now(), got: n });
    got.delete(rev);
  }
}

/** Opens one stream; resolves when its first bookmark arrived (true) or it failed (false). */
function watch(): Promise<boolean> {
  return new Promise((resolve) => {
    let ready = false;
    let buf = '';
    const req = http.get({ host: '127.0.0.1', port: spec.port, path: spec.path, agent, headers: { ...spec.headers, Accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        failed++;
        resolve(false);
        return;
      }
      open++;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let cut: number;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          if (frame.includes('event: bookmark')) {
            if (!ready) {
              ready = true;
              resolve(true);
            }
          } else if (frame.includes('event: upsert')) {
            events++;
            const m = /^id: (\d+)/m.exec(frame);
            if (m) arrived(Number(m[1]));
          }
        }
      });
      res.on('close', () => {
        open--;
        ended++;
        if (!ready) resolve(false);
      });
    });
    req.on('error', () => {
      failed++;
      resolve(false);
    });
  });
}

async function main(): Promise<void> {
  for (let i = 0; i < spec.count; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, spec.count - i) }, () => watch()));
  }
  emit({ ready: open, failed });
  process.stdin.setEncoding('utf8').on('data', (d: string) => {
    if (d.includes('report')) emit({ report: { open, ended, failed, events, rss_mb: Math.round(process.memoryUsage().rss / 2 ** 20) } });
    if (d.includes('stop')) process.exit(0);
  });
}

void main();
