/**
 * Soak (`npm run soak`, not in CI): the built service as a process on its own embedded FerretDB, under
 * mixed load for SOAK_SECONDS (default 600): creates, reads, updates, queries, deletes and on-demand
 * probes from SOAK_CLIENTS (default 8) clients, health sweeps every 30 s over registries on a loopback
 * server. Samples the service's RSS and the error counts every 5 s; writes bench/soak.json.
 * "Memory flat" = the RSS trend after warm-up (the first 20%, at least 30 s), in MB per minute.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedDatabase } from '../src/db/embedded';
import { DIST, rssMb, startChild } from './proc';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 600);
const CLIENTS = Number(process.env.SOAK_CLIENTS ?? 8);
const SAMPLE_MS = 5000;
const POOL_PER_CLIENT = 25;
const TIMEOUT_MS = 15_000;
const OUT = path.resolve(DIST, '..', 'bench', 'soak.json');

type Op = 'create' | 'read' | 'update' | 'query' | 'delete' | 'probe';
const MIX: Array<[Op, number]> = [['create', 20], ['read', 30], ['update', 20], ['query', 20], ['delete', 8], ['probe', 2]];

function pick(): Op {
  let r = Math.random() * 100;
  for (const [op, w] of MIX) if ((r -= w) < 0) return op;
  return 'read';
}

/** Least-squares slope of y over x. */
function slope(points: Array<[number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const num = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const den = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'registry-db-soak-'));
  const quiet = { info: () => undefined, warn: (m: string) => void process.stderr.write(`[db] ${m}\n`) };
  const database = await startEmbeddedDatabase({ dataDir: path.join(tmp, 'db'), mode: 'ferretdb', logger: quiet as never });
  // A loopback "registry" for probes and sweeps.
  const registry = createServer((_req, res) => res.writeHead(200, { 'Docker-Distribution-API-Version': 'registry/2.0', 'Content-Type': 'application/json' }).end('{}'));
  await new Promise<void>((r) => registry.listen(0, '127.0.0.1', r));
  const registryUrl = `http://127.0.0.1:${(registry.address() as AddressInfo).port}`;
  const service = await startChild(
    [path.join(DIST, 'src', 'main.js')],
    {
      MONGODB_URI: database.uri,
      MONGODB_DB: 'soak',
      CREDENTIALS_KEY: randomBytes(32).toString('base64'),
      DATA_DIR: path.join(tmp, 'svc'),
      HOST: '127.0.0.1',
      PORT: '0',
      HEALTH_CRON: '*/30 * * * * *',
      STORAGE_CRON: 'off',
      PROBE_ALLOWED_NETWORKS: '127.0.0.0/8,::1/128',
      RATE_LIMIT_MAX: '100000000',
      PROBE_RATE_LIMIT_MAX: '100000000',
    },
    (line) => (line.includes('"listening"') ? Number(String((JSON.parse(line) as { address: string }).address).split(':').pop()) : undefined),
    'service',
  );
  const base = `http://127.0.0.1:${service.port}`;
  const pid = service.proc.pid!;

  const started = Date.now();
  const deadline = started + SECONDS * 1000;
  const byStatus: Record<string, number> = {};
  let requests = 0;
  let errors = 0;
  let intervalRequests = 0;
  let intervalErrors = 0;

  async function send(method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
    requests++;
    intervalRequests++;
    let status = 0;
    let parsed: any;
    try {
      const res = await fetch(base + p, {
        method,
        headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      status = res.status;
      const text = await res.text();
      parsed = text ? JSON.parse(text) : undefined;
    } catch (e) {
      byStatus[`error:${(e as Error).name}`] = (byStatus[`error:${(e as Error).name}`] ?? 0) + 1;
    }
    if (status) byStatus[status] = (byStatus[status] ?? 0) + 1;
    if (status === 0 || status >= 500) {
      errors++;
      intervalErrors++;
    }
    return { status, body: parsed };
  }

  const client = async (c: number) => {
    const mine: string[] = [];
    for (let i = 0; Date.now() < deadline; i++) {
      const op = mine.length === 0 ? 'create' : pick();
      const id = mine[Math.floor(Math.random() * mine.length)];
      if (op === 'create') {
        const r = await send('POST', '/container_registry', {
          container_registry_name: `soak-${c}-${i}-${Date.now()}`,
          container_registry_public_url: `${registryUrl}/r${c}`,
          container_registry_tags: ['soak', `client-${c}`],
          container_registry_metadata: { owner: 'soak', n: i },
        });
        if (r.status === 201) mine.push(r.body.container_registry_id);
        while (mine.length > POOL_PER_CLIENT) await send('DELETE', `/container_registry/${mine.shift()!}`);
      } else if (op === 'read') await send('GET', `/container_registry/${id}`);
      else if (op === 'update') await send('PUT', `/container_registry/${id}`, { $addToSet: { container_registry_tags: `t${i % 20}` }, $set: { 'container_registry_metadata.n': i } });
      else if (op === 'query') await send('POST', `/container_registries?limit=50`, { container_registry_tags: { $in: [`client-${c}`] } });
      else if (op === 'delete') {
        mine.splice(mine.indexOf(id!), 1);
        await send('DELETE', `/container_registry/${id}`);
      } else await send('GET', `/check_container_health/${id}`);
    }
  };

  const samples: Array<{ t_s: number; rss_mb: number; requests: number; errors: number }> = [];
  const sampler = setInterval(() => {
    samples.push({ t_s: Math.round((Date.now() - started) / 1000), rss_mb: Math.round(rssMb(pid) * 10) / 10, requests: intervalRequests, errors: intervalErrors });
    process.stderr.write(`[soak] t=${samples[samples.length - 1]!.t_s}s rss=${samples[samples.length - 1]!.rss_mb}MB requests=${intervalRequests} errors=${intervalErrors}\n`);
    intervalRequests = 0;
    intervalErrors = 0;
  }, SAMPLE_MS);
  await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
  clearInterval(sampler);

  const code = await service.stop();
  await database.stop();
  registry.close();
  rmSync(tmp, { recursive: true, force: true });

  const warmupS = Math.max(30, SECONDS * 0.2);
  const after = samples.filter((s) => s.t_s >= warmupS && Number.isFinite(s.rss_mb));
  const half = Math.floor(after.length / 2);
  const result = {
    when: new Date().toISOString(),
    seconds: SECONDS,
    clients: CLIENTS,
    requests,
    requests_per_sec: Math.round(requests / SECONDS),
    errors,
    by_status: byStatus,
    exit_code: code,
    rss_mb: {
      warmup_s: warmupS,
      at_warmup_end: after[0]?.rss_mb ?? null,
      final: after[after.length - 1]?.rss_mb ?? null,
      max_after_warmup: after.length ? Math.max(...after.map((s) => s.rss_mb)) : null,
      trend_mb_per_min_after_warmup: Math.round(slope(after.map((s) => [s.t_s / 60, s.rss_mb])) * 100) / 100,
    },
    errors_after_warmup: { first_half: after.slice(0, half).reduce((n, s) => n + s.errors, 0), second_half: after.slice(half).reduce((n, s) => n + s.errors, 0) },
    samples,
  };
  writeFileSync(OUT, JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(`${JSON.stringify({ ...result, samples: `${samples.length} samples in ${path.relative(process.cwd(), OUT)}` }, null, 2)}\n`);
}

main().catch((e: Error) => {
  process.stderr.write(`soak: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
