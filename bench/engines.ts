/**
 * `npm run bench:engines [-- --seconds=N --engines=sqlite,postgres --processes=1,3]`: creates per second on each database engine, by the same command:
 * FerretDB v1 on SQLite (the embedded default) and on PostgreSQL 15 (test/support/engines.ts starts a
 * throw-away one: Debian's postgresql-15, `bash scripts/install-test-deps.sh postgres`). On each: one service
 * process, then three on the same database (replicas), as in production (`node dist/src/main.js`, the node
 * flags of `npm start`), with 12 clients sending `POST /container_registry` (each a new name) for N seconds
 * (default 10), spread over the processes. Prints one line per run; writes nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { startEngine, ENGINES, type EngineName } from '../test/support/engines';
import { apiEntry, prng } from './data';
import { DIST, productionNodeFlags, startChild, type Child } from './proc';

const flag = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const SECONDS = Number(flag('seconds') ?? 10);
const RUNS = (flag('processes') ?? '1,3').split(',').map(Number);
const ONLY = (flag('engines')?.split(',') as EngineName[] | undefined) ?? ENGINES;
const CLIENTS = 12;
const log = (msg: string) => process.stderr.write(`[bench:engines ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

function startService(uri: string, dbName: string, dataDir: string): Promise<Child> {
  const env = {
    MONGODB_URI: uri,
    MONGODB_DB: dbName,
    DATA_DIR: dataDir,
    CREDENTIALS_KEY: randomBytes(32).toString('base64'),
    PROBE_ALLOWED_NETWORKS: '127.0.0.0/8,::1/128',
    HEALTH_CRON: 'off',
    STORAGE_CRON: 'off',
    RATE_LIMIT_MAX: '100000000',
    HOST: '127.0.0.1',
    PORT: '0',
  };
  const portOf = (line: string) => (line.includes('"listening"') ? Number(String((JSON.parse(line) as { address: string }).address).split(':').pop()) : undefined);
  return startChild([...productionNodeFlags(path.resolve(DIST, '..')), path.join(DIST, 'src', 'main.js')], env, portOf, 'service');
}

interface Figures {
  creates: number;
  perSec: number;
  p50: number;
  p99: number;
  failed: number;
}

/** CLIENTS loops of creates for SECONDS, client i on process i mod n. */
async function createLoad(ports: number[], prefix: string): Promise<Figures> {
  const rand = prng(7);
  const latencies: number[] = [];
  let failed = 0;
  let next = 0;
  const until = Date.now() + SECONDS * 1000;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, c) => {
      const base = `http://127.0.0.1:${ports[c % ports.length]}`;
      while (Date.now() < until) {
        const body = JSON.stringify(apiEntry(next++, 'http://127.0.0.1:9/', rand, prefix));
        const t = performance.now();
        const res = await fetch(`${base}/container_registry`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body, signal: AbortSignal.timeout(30_000) }).catch(() => undefined);
        await res?.arrayBuffer();
        if (res?.status === 201) latencies.push(performance.now() - t);
        else failed++;
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const at = (q: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN);
  return { creates: latencies.length, perSec: Math.round((latencies.length / ((Date.now() - started) / 1000)) * 10) / 10, p50: at(0.5), p99: at(0.99), failed };
}

async function benchEngine(name: EngineName): Promise<void> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), `registry-db-bench-${name}-`));
  const engine = await startEngine(name, path.join(tmp, 'db')).catch((e: unknown) => {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  });
  try {
    for (const replicas of RUNS) {
      const dbName = `bench_${name}_${replicas}`;
      const services = await Promise.all(Array.from({ length: replicas }, (_, i) => startService(engine.uri, dbName, path.join(tmp, `svc${i}`))));
      try {
        const f = await createLoad(
          services.map((s) => s.port),
          `${name}-${replicas}`,
        );
        log(`${name}: ${replicas} process(es), ${CLIENTS} clients, ${SECONDS} s: ${f.creates} creates, ${f.perSec}/s, p50 ${f.p50} ms, p99 ${f.p99} ms, ${f.failed} not 201`);
      } finally {
        await Promise.all(services.map((s) => s.stop()));
      }
    }
  } finally {
    await engine.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  for (const name of ONLY) await benchEngine(name);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:engines: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
