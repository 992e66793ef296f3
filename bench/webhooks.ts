/**
 * Webhook delivery figures (issue 12): throughput of one subscription draining a backlog to one fast
 * loopback receiver (events per second), and the delay from a status change (the answer of
 * GET /check_container_health/:id) to the receiver getting its `registry.health_changed`.
 *
 *   npm run build --silent && tsc -p bench/tsconfig.json && node dist/bench/webhooks.js [--events=500] [--changes=20]
 * and as the `webhooks` phase of `npm run bench` (bench/run.ts: keys webhooks.events_per_s, webhooks.delay_p99_ms).
 *
 * Everything runs in one process on loopback (service, embedded FerretDB in its own process, receiver,
 * a fake registry), so the figures include the receiver's and the client's CPU on the same machine.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { MongoClient } from 'mongodb';
import { compose } from '../src/compose';
import { loadConfig } from '../src/config';
import { startEmbeddedDatabase } from '../src/db/embedded';
import { createLogger } from '../src/logger';

const arg = (name: string, dflt: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt);

async function listen(handler: http.RequestListener): Promise<{ server: http.Server; url: string }> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

export interface WebhooksResult {
  throughput: { events: number; seconds: number; events_per_second: number };
  status_change_to_delivery_ms: { changes: number; p50: number; p90: number; p99: number; max: number };
}

/**
 * The webhook figures on the database at `uri` (database `bench_webhooks`, which should be new): `events`
 * creates drained to one receiver, then `changes` status changes each timed to its delivery.
 */
export async function webhooksBench(uri: string, EVENTS: number, CHANGES: number): Promise<WebhooksResult> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'registry-db-bench-wh-'));
  const client = new MongoClient(uri);
  await client.connect();
  const db = client.db('bench_webhooks');
  const config = loadConfig({ MONGODB_URI: uri, MONGODB_DB: 'bench_webhooks', CREDENTIALS_KEY: randomBytes(32).toString('base64'), DATA_DIR: tmp, HEALTH_CRON: 'off', STORAGE_CRON: 'off', RATE_LIMIT_MAX: '0', PROBE_RATE_LIMIT_MAX: '0', LOG_LEVEL: 'warn' });
  const parts = await compose(config, db, createLogger('warn', new PassThrough().resume()));
  await parts.feed.waitFor(0, 30_000);
  const api = await listen(parts.app as unknown as http.RequestListener);
  parts.protectPort(Number(new URL(api.url).port));
  const post = (p: string, body: unknown) => fetch(api.url + p, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json() as Promise<any>);

  // The receiver: answers 204 at once, notes when each event id first arrived.
  const arrived = new Map<string, { type: string; at: number }>();
  const receiver = await listen((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const ev = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id: string; type: string };
      if (!arrived.has(ev.id)) arrived.set(ev.id, { type: ev.type, at: Date.now() });
      res.writeHead(204).end();
    });
  });

  // 1. Throughput: EVENTS entries created, then a subscription placed before them drains the backlog.
  for (let i = 0; i < EVENTS; i++) await post('/container_registry', { container_registry_name: `bench-${i}-${randomUUID().slice(0, 6)}`, container_registry_public_url: 'http://127.0.0.1:9' });
  await parts.feed.waitFor(parts.feed.acked, 10_000);
  process.stderr.write(`${EVENTS} entries created; draining\n`);
  const id = randomUUID();
  const t0 = Date.now();
  await parts.webhooks.store.create({ _id: id, url: `${receiver.url}/hook`, events: ['registry.created'], secret_enc: parts.webhooks.store.seal(id, `whsec_${randomBytes(32).toString('base64')}`), status: 'active', position: 0, created_at: new Date(), delivered: 0, failed_attempts: 0, last_error: null, failing_since: null });
  parts.webhooks.deliverer.added(id);
  while (arrived.size < EVENTS) await new Promise((r) => setTimeout(r, 20));
  const drainS = (Date.now() - t0) / 1000;
  await fetch(`${api.url}/webhooks/${id}`, { method: 'DELETE' });
  process.stderr.write(`drained in ${drainS} s; status changes\n`);

  // 2. Status change -> delivery: a fake registry flips between up and 500; each on-demand check changes the status.
  let up = true;
  const registry = await listen((_req, res) => {
    if (up) res.writeHead(200, { 'Docker-Distribution-API-Version': 'registry/2.0', 'Content-Type': 'application/json' }).end('{}');
    else res.writeHead(500).end('down');
  });
  const sub = await post('/webhooks', { url: `${receiver.url}/hook`, events: ['registry.health_changed'] });
  const entry = await post('/container_registry', { container_registry_name: `bench-flip-${randomUUID().slice(0, 6)}`, container_registry_public_url: registry.url });
  // Let the subscription see the entry before its first probe (else the two collapse into one state: no change).
  await new Promise((r) => setTimeout(r, 1000));
  const delays: number[] = [];
  for (let i = 0; i < CHANGES; i++) {
    const before = [...arrived.values()].filter((a) => a.type === 'registry.health_changed').length;
    const checked = (await fetch(`${api.url}/check_container_health/${entry.container_registry_id}`).then((r) => r.json())) as { status: string };
    const answered = Date.now();
    while ([...arrived.values()].filter((a) => a.type === 'registry.health_changed').length === before) {
      if (Date.now() - answered > 10_000) throw new Error(`no event within 10 s of a change to ${checked.status}; subscription: ${JSON.stringify(await fetch(`${api.url}/webhooks/${sub.id}`).then((r) => r.json()))}`);
      await new Promise((r) => setTimeout(r, 1));
    }
    const last = [...arrived.values()].filter((a) => a.type === 'registry.health_changed').at(-1)!;
    delays.push(last.at - answered);
    up = !up;
  }

  const result: WebhooksResult = {
    throughput: { events: EVENTS, seconds: Number(drainS.toFixed(2)), events_per_second: Math.round(EVENTS / drainS) },
    status_change_to_delivery_ms: { changes: CHANGES, p50: pct(delays, 50), p90: pct(delays, 90), p99: pct(delays, 99), max: Math.max(...delays) },
  };
  parts.lifecycle.beginStop();
  api.server.closeAllConnections();
  api.server.close();
  receiver.server.close();
  registry.server.close();
  receiver.server.closeAllConnections();
  await parts.lifecycle.stop(createLogger('error', new PassThrough().resume()));
  await client.close();
  rmSync(tmp, { recursive: true, force: true });
  return result;
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'registry-db-bench-wh-'));
  const quiet = { info: () => undefined, warn: (m: string) => process.stderr.write(`${m}\n`) };
  const database = await startEmbeddedDatabase({ dataDir: path.join(tmp, 'db'), mode: 'ferretdb', logger: quiet as never });
  try {
    const result = await webhooksBench(database.uri, arg('events', 500), arg('changes', 20));
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await database.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`${(e as Error).stack}\n`);
    process.exit(1);
  });
}
