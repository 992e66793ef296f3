/**
 * Watchers phase of the benchmark (issue 19, SPEC 12: "1,000 watchers per replica, a change to all within 1 s,
 * well under 100 KB each"): N concurrent Server-Sent Event streams of the change feed on one replica (quick
 * 1,000, full 10,000), opened by one load-generator process (bench/watch-load.ts, descriptor limit raised), on
 * loopback. Measures the service's memory per watcher (RSS and heap with the streams open, less before), the
 * delay from a write (its PUT sent) to its arrival at the last watcher, and GET /container_registry/:id p99
 * under the same writes without and with the watchers.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { apiEntry, prng, storedDocs } from './data';
import { percentile, type FeedDeps } from './feed';
import { DIST, rssMb, startLoad, type Child } from './proc';

/** What the feed phases get (bench/feed.ts), with a service started with extra settings. */
export interface WatchersDeps extends Omit<FeedDeps, 'startService'> {
  startService: (uri: string, dbName: string, extra: Record<string, string>) => Promise<Child>;
}

const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;
const ENTRIES = 1000;
const WRITE_EVERY_MS = 200;

/** Writes `n` PUTs, WRITE_EVERY_MS apart, to entries picked at random; answers when each revision's PUT was sent. */
async function writes(service: Child, deps: WatchersDeps, ids: string[], n: number, tag: string): Promise<Map<number, number>> {
  const sent = new Map<number, number>();
  const rand = prng(n);
  for (let k = 0; k < n; k++) {
    const id = ids[Math.floor(rand() * ids.length)]!;
    const at = Date.now();
    const res = await fetch(`http://127.0.0.1:${service.port}/container_registry/${id}`, {
      method: 'PUT',
      headers: { ...deps.writeAuth, 'Content-Type': 'application/json' },
      body: JSON.stringify({ $set: { container_registry_metadata: { owner: `${tag}-${k}` } } }),
    });
    const body = (await res.json()) as { revision?: number };
    if (res.status !== 200 || typeof body.revision !== 'number') throw new Error(`PUT answered ${res.status}`);
    sent.set(body.revision, at);
    await sleep(Math.max(0, WRITE_EVERY_MS - (Date.now() - at)));
  }
  return sent;
}

/** GET by id load (4 connections) for as long as `during` runs; answers its p99 and rate. */
async function getWhile<T>(service: Child, deps: WatchersDeps, ids: string[], during: Promise<T>): Promise<{ result: T; p99_ms: number; p50_ms: number; requests_per_sec: number }> {
  const load = startLoad({ url: `http://127.0.0.1:${service.port}`, connections: 4, durationSec: 600, headers: deps.auth, paths: ids.map((id) => `/container_registry/${id}`) });
  try {
    const result = await during;
    load.stop();
    const r = await load.result;
    return { result, p99_ms: r.p99_ms, p50_ms: r.p50_ms, requests_per_sec: round(r.requests_per_sec, 1) };
  } catch (e) {
    load.stop();
    throw e;
  }
}

/** The load generator under the hard descriptor limit; its JSON lines go to `onLine`. */
function startWatchers(port: number, since: number, count: number, auth: Record<string, string>, onLine: (o: Record<string, any>) => void) {
  const spec = JSON.stringify({ port, path: `/container_registries/changes?since=${since}`, headers: auth, count });
  const script = `ulimit -n "$(ulimit -Hn)" && exec "$0" "$1" "$2"`;
  const proc = spawn('bash', ['-c', script, process.execPath, path.join(DIST, 'bench', 'watch-load.js'), spec], { stdio: ['pipe', 'pipe', 'inherit'] });
  readline.createInterface({ input: proc.stdout! }).on('line', (l) => onLine(JSON.parse(l) as Record<string, any>));
  return proc;
}

function waitFor<T>(check: () => T | undefined, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const until = Date.now() + ms;
    const t = setInterval(() => {
      const v = check();
      if (v !== undefined) {
        clearInterval(t);
        resolve(v);
      } else if (Date.now() > until) {
        clearInterval(t);
        reject(new Error(`${what}: not within ${ms} ms`));
      }
    }, 20);
  });
}

export async function watchersPhase(deps: WatchersDeps) {
  const count = deps.quick ? 1000 : 10_000;
  const writesN = deps.quick ? 25 : 50;
  const dbName = 'bench_watchers';
  const rand = prng(21);
  const docs = await storedDocs(Array.from({ length: ENTRIES }, (_, i) => apiEntry(i, `http://127.0.0.1:9/w${i}`, rand, 'watch')));
  await deps.load(deps.client.db(dbName), docs);
  const ids = docs.map((d) => d._id);
  // Each watcher is a connection: the default HTTP_MAX_CONNECTIONS (1,024) is raised as an operator would.
  const service = await deps.startService(deps.uri, dbName, { HTTP_MAX_CONNECTIONS: String(count + 256) });
  let watchers: ReturnType<typeof startWatchers> | undefined;
  try {
    await service.waitForLine('change feed: view ready', 600_000);
    await getWhile(service, deps, ids, sleep(3000)); // warm-up
    const noWatchers = await getWhile(service, deps, ids, writes(service, deps, ids, writesN, 'idle'));
    await sleep(2000);
    const rssBefore = rssMb(service.proc.pid!);
    const heapBefore = await deps.heap(service.port);

    const arrivals = new Map<number, number>();
    let ready: { ready: number; failed: number } | undefined;
    let report: Record<string, number> | undefined;
    // Live watchers: from the current revision (a list from 0 would be a catch-up of the whole catalog each).
    const at = await fetch(`http://127.0.0.1:${service.port}/container_registries?limit=1`, { method: 'POST', headers: deps.auth });
    await at.arrayBuffer();
    const head = Number(at.headers.get('x-catalog-revision'));
    const opening = Date.now();
    watchers = startWatchers(service.port, head, count, deps.auth, (o) => {
      if (o.ready !== undefined) ready = o as typeof ready;
      else if (o.rev !== undefined) arrivals.set(o.rev, o.last_at);
      else if (o.report) report = o.report;
    });
    const opened = await waitFor(() => ready, 300_000, `${count} watchers open`);
    const openS = (Date.now() - opening) / 1000;
    deps.log(`watchers: ${opened.ready} open (${opened.failed} failed) in ${round(openS, 1)} s`);
    await sleep(3000);
    const rssWith = rssMb(service.proc.pid!);
    const heapWith = await deps.heap(service.port);
    let rssPeak = rssWith;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMb(service.proc.pid!))), 100);
    let withWatchers: Awaited<ReturnType<typeof getWhile<Map<number, number>>>>;
    try {
      withWatchers = await getWhile(service, deps, ids, writes(service, deps, ids, writesN, 'watched'));
    } finally {
      clearInterval(sampler);
    }
    const sent = withWatchers.result;
    await waitFor(() => ([...sent.keys()].every((r) => arrivals.has(r)) ? true : undefined), 30_000, 'every write at every watcher').catch(() => undefined);
    watchers.stdin!.write('report\n');
    await waitFor(() => report, 10_000, 'the watchers report').catch(() => undefined);
    // GET without watchers again, once they are gone: the lower p99 of the runs before and after counts
    // (one run on this shared machine moves by tens of ms).
    watchers.kill('SIGKILL');
    await sleep(2000);
    const after = await getWhile(service, deps, ids, writes(service, deps, ids, writesN, 'after'));
    const without = after.p99_ms < noWatchers.p99_ms ? after : noWatchers;
    const fanout = [...sent].filter(([r]) => arrivals.has(r)).map(([r, at]) => arrivals.get(r)! - at).sort((a, b) => a - b);
    const result = {
      count: opened.ready,
      failed_to_open: opened.failed,
      open_s: round(openS, 1),
      entries: ENTRIES,
      writes: sent.size,
      missing_at_some_watcher: sent.size - fanout.length,
      fanout_p50_ms: percentile(fanout, 50),
      fanout_p99_ms: percentile(fanout, 99),
      fanout_max_ms: fanout.at(-1),
      rss_before_mb: round(rssBefore, 1),
      rss_with_mb: round(rssWith, 1),
      rss_peak_mb: round(rssPeak, 1),
      heap_before_mb: heapBefore,
      heap_with_mb: heapWith,
      kb_per_watcher: round(((rssWith - rssBefore) * 1024) / Math.max(1, opened.ready), 1),
      heap_kb_per_watcher: round((((heapWith.heap_size_used ?? 0) - (heapBefore.heap_size_used ?? 0)) * 1024) / Math.max(1, opened.ready), 1),
      get_without: { p50_ms: without.p50_ms, p99_ms: without.p99_ms, requests_per_sec: without.requests_per_sec, p99_runs_ms: [noWatchers.p99_ms, after.p99_ms] },
      get_with: { p50_ms: withWatchers.p50_ms, p99_ms: withWatchers.p99_ms, requests_per_sec: withWatchers.requests_per_sec },
      get_p99_ratio: round(withWatchers.p99_ms / Math.max(1, without.p99_ms)),
      load_generator: report,
      targets: { kb_per_watcher: 20, fanout_p99_ms: 1000 },
    };
    deps.log(`watchers: ${result.count} open, ${result.kb_per_watcher} KB RSS each (heap ${result.heap_kb_per_watcher} KB), fanout p50 ${result.fanout_p50_ms} ms p99 ${result.fanout_p99_ms} ms, missing ${result.missing_at_some_watcher}; GET p99 ${without.p99_ms} -> ${withWatchers.p99_ms} ms`);
    return result;
  } finally {
    watchers?.kill('SIGKILL');
    await service.stop();
  }
}
