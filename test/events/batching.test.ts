/**
 * Webhook deliveries write what they leave behind (attempt log, per-entry state, counters, position) in
 * batches (src/events/deliverer.ts). This proves a batch cut off by the database loses nothing: on a FerretDB
 * of this test's own, the database is stopped while the receiver holds the answer to an event (so that
 * event's writes, and those of the events before it in the batch, are still pending), deliveries go on from
 * memory, the batch's write fails, the database comes back; then every event has arrived, and the stored
 * subscription (position, counter, one state row per entry, the attempt log) holds every delivered event.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { entry } from '../support/entries';
import { startEngine, testEngine, type RunningEngine } from '../support/engines';
import { call, startTestService, type TestService } from '../support/service';
import { tempDir } from '../reliability/support';
import { eventually } from '../support/webhook-receiver';

const ENTRIES = 40;
const STOP_AT = 10;

let engine: RunningEngine;
let svc: TestService;
let dataDir: string;
let receiver: http.Server | undefined;

beforeAll(async () => {
  dataDir = tempDir('webhook-batching');
  engine = await startEngine(testEngine(), dataDir);
  svc = await startTestService({ WEBHOOK_LEASE_MS: '2000', WEBHOOK_RETRY_MIN_MS: '100', WEBHOOK_RETRY_MAX_MS: '500' }, { uri: engine.uri });
});
afterAll(async () => {
  receiver?.closeAllConnections();
  receiver?.close();
  await svc?.close();
  await engine?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

test('When the database goes away in the middle of a batch of deliveries and comes back, then every event arrives and the stored subscription holds every one of them', async () => {
  const feed = svc.parts.feed;
  const from = feed.view.revision;
  const ids: string[] = [];
  for (let i = 0; i < ENTRIES; i++) {
    const r = await call(svc.url, 'POST', '/container_registry', entry());
    expect(r.status).toBe(201);
    ids.push(r.body.container_registry_id);
  }
  expect(await feed.waitFor(feed.acked, 5000)).toBe(true);
  const last = feed.view.revision;

  // The receiver: answers 204; at the STOP_AT-th distinct event it stops the database before answering, and
  // starts it again 7 s later, longer than the driver waits for a server: deliveries go on from memory
  // meanwhile, and the batch's write fails.
  const got = new Map<string, string>();
  let restarted: Promise<void> | undefined;
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const ev = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id: string; data: { container_registry_id: string } };
      got.set(ev.data.container_registry_id, ev.id);
      if (got.size === STOP_AT && !restarted) {
        let started: () => void;
        restarted = new Promise<void>((resolve) => (started = resolve));
        void engine.stop().then(() => {
          res.writeHead(204).end();
          setTimeout(() => void engine.start().then(started), 7000);
        });
        return;
      }
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver!.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;

  // A subscription placed before the entries (as POST /webhooks would, at revision `from`).
  const store = svc.parts.webhooks.store;
  const sub = randomUUID();
  await store.create({ _id: sub, url, events: ['registry.created'], secret_enc: store.seal(sub, `whsec_${randomBytes(32).toString('base64')}`), status: 'active', position: from, created_at: new Date(), delivered: 0, failed_attempts: 0, last_error: null, failing_since: null });
  svc.parts.webhooks.deliverer.added(sub);

  await eventually(async () => restarted !== undefined, 30_000);
  await restarted;
  await eventually(async () => got.size === ENTRIES, 60_000);
  expect([...got.keys()].sort()).toEqual([...ids].sort());
  expect(svc.logs()).toMatch(/webhooks: delivery loop failed; retrying/);

  // What the subscription stored: the position past every entry, a state row per entry, every event's attempt.
  const stored = await eventually(async () => {
    const s = await store.get(sub);
    return s && s.position >= last ? s : undefined;
  }, 30_000);
  expect(stored.delivered).toBeGreaterThanOrEqual(ENTRIES);
  expect(await store.known.countDocuments({ sub })).toBe(ENTRIES);
  const logged = new Set((await store.log.find({ sub }).toArray()).filter((d) => d.http_status === 204).map((d) => d.event_id));
  for (const eventId of got.values()) expect(logged).toContain(eventId);
}, 120_000);
