/**
 * Resolution benchmark (SPEC 14, issue 11): the prefix index in process at 1,000, 10,000 and 100,000 entries
 * (cost per reference, which must not grow with the catalog; target under 1 ms at 10,000), then the service
 * over HTTP with 10,000 stored entries: POST /resolve with 1,000 references (target under 100 ms).
 */
import { readFileSync } from 'node:fs';
import type { StoredRegistry } from '../src/registries/model';
import { PrefixIndex, type ApiEntry } from '../src/resolve';
import { parseReference } from '../src/resolve/reference';
import { prng, storedDocs, TAGS } from './data';
import type { Child } from './proc';

const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;
const UPSTREAMS = ['docker.io', ...Array.from({ length: 10 }, (_, k) => `quay.io/org-${k}`), ...Array.from({ length: 9 }, (_, k) => `ghcr.io/owner-${k}`)];
const STATUSES = ['healthy', 'healthy', 'healthy', 'degraded', 'unknown', 'unhealthy'] as const;

/** The image prefix of registry i: bare hosts, hosts with a port and a namespace, shared hosts, IPv6 hosts. */
function prefixOf(i: number): string {
  switch (i % 4) {
    case 0:
      return `r${i}.example.com`;
    case 1:
      return `r${i}.example.com:5000/team-${i % 37}`;
    case 2:
      return `hub-${i % 100}.example.com/ns-${i}`;
    default:
      return `[fd00::${i.toString(16)}]:5000/apps`;
  }
}

/**
 * n entries as the API writes them: 100 mirrors (5 each of Docker Hub and 19 other upstreams), the rest origins.
 * The mirrors stay 100 at every size, so that a reference has as many candidates at 100,000 entries as at 1,000
 * and the figures compare the cost of finding them, not the size of the answer.
 */
export function catalog(n: number, seed = 11): Array<Record<string, unknown>> {
  const rand = prng(seed);
  const mirrors = 100;
  return Array.from({ length: n }, (_, i) => {
    const mirror = i >= n - mirrors;
    const j = i - (n - mirrors);
    return {
      container_registry_name: `resolve-${String(i).padStart(7, '0')}`,
      container_registry_public_url: `http://127.0.0.1:9/r${i}`,
      container_registry_image_prefix: mirror ? `mirror-${j}.example.com/cache` : prefixOf(i),
      container_registry_tags: [TAGS[Math.floor(rand() * TAGS.length)]!],
      ...(mirror ? { container_registry_config: { mirror_of: [UPSTREAMS[j % UPSTREAMS.length]!] } } : {}),
    };
  });
}

/** m references: hits at several depths (with tags and digests), Docker Hub short names, mirrored upstreams, misses. */
export function references(n: number, m: number, seed = 5): string[] {
  const rand = prng(seed);
  const digest = `sha256:${'0123456789abcdef'.repeat(4)}`;
  return Array.from({ length: m }, (_, i) => {
    const k = Math.floor(rand() * n);
    switch (i % 5) {
      case 0:
        return `${prefixOf(k)}/app-${k}:v1`;
      case 1:
        return `nginx-${k}:1.${k % 10}`;
      case 2:
        return `${UPSTREAMS[k % UPSTREAMS.length]}/app-${k}:2`;
      case 3:
        return `unknown-${k}.example.org/x/y`;
      default:
        return `${prefixOf(k)}/a/b/c/d@${digest}`;
    }
  });
}

/** CPU time (user + system) a process has used so far, in ms. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime are fields 14 and 15 of the line, in clock ticks (100 per second on Linux).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** The index alone, in this process: build time, and time per reference (parse + resolve) at three sizes. */
export function inProcess(log: (m: string) => void) {
  const out: Record<string, unknown> = {};
  for (const n of [1_000, 10_000, 100_000]) {
    const rand = prng(n);
    const entries: ApiEntry[] = catalog(n).map((e, i) => ({
      ...(e as unknown as ApiEntry),
      container_registry_id: `id-${i}`,
      container_registry_health: { status: STATUSES[Math.floor(rand() * STATUSES.length)]! },
    }));
    const index = new PrefixIndex();
    const t0 = performance.now();
    index.reset(entries);
    const buildMs = performance.now() - t0;
    const refs = references(n, 20_000);
    let candidates = 0;
    // Warm-up round, then timed rounds, each reference timed alone.
    for (const r of refs) index.resolve(parseReference(r), { prefer: ['gpu'] });
    const times: number[] = [];
    for (let round = 0; round < 3; round++) {
      for (const r of refs) {
        const s = process.hrtime.bigint();
        candidates += index.resolve(parseReference(r), { prefer: ['gpu'] }).candidates.length;
        times.push(Number(process.hrtime.bigint() - s) / 1000);
      }
    }
    times.sort((a, b) => a - b);
    const mean = times.reduce((a, b) => a + b, 0) / times.length;
    const figures = { entries: n, build_ms: round(buildMs, 1), references: times.length, candidates_per_ref: round(candidates / times.length), mean_us: round(mean), p50_us: round(percentile(times, 50)), p99_us: round(percentile(times, 99)), max_us: round(times[times.length - 1]!) };
    log(`resolve in process at ${n} entries: mean ${figures.mean_us} µs, p50 ${figures.p50_us} µs, p99 ${figures.p99_us} µs per reference (${figures.candidates_per_ref} candidates each); index built in ${figures.build_ms} ms`);
    out[String(n)] = figures;
  }
  return out;
}

/** The service over HTTP: 10,000 entries stored before it starts (it loads them), POST /resolve with 1,000 references. */
export async function overHttp(deps: { uri: string; startService: (uri: string, dbName: string) => Promise<Child>; insert: (docs: StoredRegistry[]) => Promise<number>; auth: Record<string, string>; log: (m: string) => void }) {
  const n = 10_000;
  const docs = await storedDocs(catalog(n));
  await deps.insert(docs);
  const service = await deps.startService(deps.uri, 'bench_resolve');
  try {
    // The prefix index is loaded from the replica's view once the feed has read the catalog (src/feed/resolver.ts).
    const ready = JSON.parse(await service.waitForLine('change feed: view ready', 120_000)) as { entries: number; duration_ms: number };
    const loaded = { entries: ready.entries, ms: ready.duration_ms };
    const refs = references(n, 1000);
    const body = JSON.stringify({ images: refs, prefer: ['gpu'] });
    const post = async () => {
      const t0 = performance.now();
      const res = await fetch(`http://127.0.0.1:${service.port}/resolve`, { method: 'POST', headers: { ...deps.auth, 'Content-Type': 'application/json' }, body });
      const json = (await res.json()) as { results: Array<{ candidates?: unknown[]; error?: { status: number } }> };
      const ms = performance.now() - t0;
      if (res.status !== 200 || json.results.length !== refs.length) throw new Error(`POST /resolve answered ${res.status} with ${json.results?.length} results`);
      const bytes = Number(res.headers.get('content-length') ?? 0);
      return { ms, bytes, found: json.results.filter((r) => r.candidates).length, invalid: json.results.filter((r) => r.error?.status === 400).length };
    };
    for (let i = 0; i < 5; i++) await post();
    const runs = [];
    const cpu0 = cpuMs(service.proc.pid!);
    for (let i = 0; i < 40; i++) runs.push(await post());
    const cpuPerBatch = (cpuMs(service.proc.pid!) - cpu0) / runs.length;
    const ms = runs.map((r) => r.ms).sort((a, b) => a - b);
    const figures = {
      entries: loaded.entries,
      startup_load_ms: loaded.ms,
      batch: refs.length,
      requests: runs.length,
      resolved: runs[0]!.found,
      invalid: runs[0]!.invalid,
      p50_ms: round(percentile(ms, 50), 1),
      p99_ms: round(percentile(ms, 99), 1),
      max_ms: round(ms[ms.length - 1]!, 1),
      // CPU the service spent per batch (user + system, from /proc): what the request costs without the
      // waiting a shared machine adds to the wall-clock figures above.
      service_cpu_ms: round(cpuPerBatch, 1),
      request_bytes: body.length,
      response_bytes: runs[0]!.bytes,
    };
    deps.log(`POST /resolve with ${refs.length} references at ${loaded.entries} entries: p50 ${figures.p50_ms} ms, p99 ${figures.p99_ms} ms, service CPU ${figures.service_cpu_ms} ms per batch (${figures.resolved} resolved); start-up load ${loaded.ms} ms`);
    return figures;
  } finally {
    await service.stop();
  }
}
