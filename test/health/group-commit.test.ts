/**
 * Probe results that finish together are written together (group commit, issue 19): one append to the change
 * log and one bulk write of the registries collection per batch (src/db/changelog.ts, src/registries/writes.ts).
 * This proves a batch cut off by the database loses nothing and writes nothing over a newer state. On a
 * FerretDB of this test's own, a loopback registry holds every probe of a sweep and answers them all at once,
 * so the results reach the writers together; the database is frozen at a chosen moment of their writing
 * (before the first append; a little later, with appends done and collection writes in flight) and killed, then
 * started again. Afterwards, for every entry: the collection holds the latest change the log has of it, the
 * feed's view holds the same revision, and every result the sweep counted as written is there. A last sweep
 * with the database up writes every entry (nothing was left stuck).
 */
import { rmSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { entry } from '../support/entries';
import { startEngine, testEngine, type RunningEngine } from '../support/engines';
import { call, startTestService, type TestService } from '../support/service';
import { tempDir } from '../reliability/support';
import { eventually } from '../support/webhook-receiver';

const ENTRIES = 40;

let engine: RunningEngine;
let svc: TestService;
let dataDir: string;
const held: ServerResponse[] = [];
let onAllHeld: (() => void) | undefined;
const registry = createServer((req, res) => {
  if (!/\/v2\/$/.test(req.url ?? '')) return void res.writeHead(404).end();
  held.push(res);
  if (held.length === ENTRIES && onAllHeld) onAllHeld();
});
let base: string;

function answerAll(): void {
  for (const res of held.splice(0)) res.writeHead(200, { 'Docker-Distribution-API-Version': 'registry/2.0', 'Content-Type': 'application/json' }).end('{}');
}

beforeAll(async () => {
  dataDir = tempDir('group-commit');
  engine = await startEngine(testEngine(), dataDir);
  // Every probe of a sweep at once (one per entry), with time to spare while they are held.
  svc = await startTestService({ PROBE_CONCURRENCY: String(ENTRIES), PROBE_TIMEOUT_MS: '20000' }, { uri: engine.uri, monitorCommands: true });
  await new Promise<void>((resolve) => registry.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(registry.address() as AddressInfo).port}`;
}, 60_000);
afterAll(async () => {
  answerAll();
  registry.closeAllConnections();
  registry.close();
  await svc?.close();
  await engine?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

interface Latest {
  r: number;
  op: string;
  checkedAt?: string;
}

/** The latest change of each entry in the log, from the database itself. */
async function latestInLog(ids: string[]): Promise<Map<string, Latest>> {
  const out = new Map<string, Latest>();
  const recs = await svc.db.collection('catalog_changes').find({ key: { $in: ids } }).toArray();
  for (const rec of recs) {
    const cur = out.get(rec.key as string);
    if (cur && cur.r > (rec.r as number)) continue;
    out.set(rec.key as string, { r: rec.r as number, op: rec.op as string, checkedAt: rec.doc?.container_registry_health?.checked_at });
  }
  return out;
}

/** Where the collection, the log and the view disagree on an entry (empty when they agree on every one). */
async function disagreements(ids: string[]): Promise<string[]> {
  const log = await latestInLog(ids);
  const stored = new Map((await svc.db.collection('container_registries').find({ _id: { $in: ids as never[] } }).toArray()).map((d) => [String(d._id), d]));
  const out: string[] = [];
  for (const id of ids) {
    const l = log.get(id);
    const s = stored.get(id);
    const v = svc.parts.feed.view.get(id);
    if (!l || l.op !== 'upsert') out.push(`${id}: log ${JSON.stringify(l)}`);
    else if (s?.revision !== l.r || s.container_registry_health?.checked_at !== l.checkedAt) out.push(`${id}: collection at ${s?.revision}, log at ${l.r}`);
    else if (v?.revision !== l.r) out.push(`${id}: view at ${v?.revision}, log at ${l.r}`);
  }
  return out;
}

/** The bucket counts of registry_db_write_batch_size for `step` (GET /metrics): [batches, batches of one]. */
async function batches(step: 'log' | 'collection'): Promise<[number, number]> {
  const text = (await call(svc.url, 'GET', '/metrics')).text as string;
  const count = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
  return [count(new RegExp(`registry_db_write_batch_size_count\\{step="${step}"\\} (\\d+)`)), count(new RegExp(`registry_db_write_batch_size_bucket\\{le="1",step="${step}"\\} (\\d+)`))];
}

test('When the database goes away while a sweep\'s results are written in batches, then every entry ends where its log ends, in the collection and the view, and nothing is lost', async () => {
  const ids: string[] = [];
  for (let i = 0; i < ENTRIES; i++) {
    const r = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_public_url: `${base}/r${i}` }));
    expect(r.status).toBe(201);
    ids.push(r.body.container_registry_id);
  }
  const scheduler = svc.parts.health.scheduler;

  // The database freezes (then dies) at one of three moments: before the results arrive (their appends wait
  // on it); as the first append of more than one change is sent; as the first bulk write of the collection
  // with more than one entry is sent (its changes are in the log). Told by the driver's command monitoring.
  let freezeOn: ((command: Record<string, any>) => boolean) | undefined;
  let froze: (() => void) | undefined;
  svc.client.on('commandStarted', (ev) => {
    if (!freezeOn?.(ev.command)) return;
    freezeOn = undefined;
    engine.freeze();
    froze?.();
  });
  const moments: Array<((c: Record<string, any>) => boolean) | null> = [
    null,
    (c) => c.insert === 'catalog_changes' && c.documents?.length > 1,
    (c) => c.update === 'container_registries' && c.updates?.length > 1,
  ];
  for (const [round, moment] of moments.entries()) {
    const frozen = new Promise<void>((resolve) => {
      onAllHeld = () => {
        onAllHeld = undefined;
        if (!moment) engine.freeze();
        const atMoment = new Promise<void>((r) => (froze = r));
        freezeOn = moment ?? undefined;
        answerAll();
        void (async () => {
          if (moment) await atMoment;
          // Cut off whatever was in flight, then back after the driver gave up on it.
          await sleep(500);
          await engine.crash();
          await sleep(1500);
          await engine.start();
          resolve();
        })();
      };
    });
    // The sweep may end in an error (its last steps can meet the database away): what it wrote is checked below.
    const sweep = scheduler.sweepHealth({ sweepId: `health@group-commit-${round}` }).catch(() => null);
    await frozen;
    const outcome = await sweep;
    const s = outcome?.summary;
    process.stderr.write(`[group commit] round ${round}: ${s ? `written ${s.written}, failed ${s.failed}` : 'the sweep failed'}; batches (all / of one so far): log ${(await batches('log')).join('/')}, collection ${(await batches('collection')).join('/')}\n`);
    const problems = await eventually(async () => {
      const d = await disagreements(ids).catch((e: Error) => [e.message]);
      return d.length === 0 ? 'agree' : undefined;
    }, 45_000).catch(async () => disagreements(ids));
    expect(problems).toBe('agree');
    if (outcome) {
      // Every result the sweep did not report failed is stored, with this sweep's mark. One reported failed may
      // be stored too: its write's outcome was unknown (the driver retried it, or the feed's check wrote it).
      const sweepId = `health@group-commit-${round}`;
      const failed = new Set(
        svc
          .logs()
          .split('\n')
          .filter((l) => l.includes('"sweep item') && l.includes(sweepId))
          .map((l) => JSON.parse(l).registry_id as string),
      );
      expect(failed.size).toBe(outcome.summary.failed);
      const stored = new Set((await svc.db.collection('container_registries').find({ 'container_registry_health.status': 'healthy', _health_swept: sweepId }, { projection: { _id: 1 } }).toArray()).map((d) => String(d._id)));
      expect(ids.filter((id) => !failed.has(id) && !stored.has(id))).toEqual([]);
      expect(stored.size).toBeGreaterThanOrEqual(outcome.summary.written);
      expect(outcome.summary.written + outcome.summary.failed + outcome.summary.superseded).toBe(outcome.summary.claimed);
    }
  }

  // With the database up, a sweep writes every entry, and the results went out together.
  const before = await batches('collection');
  onAllHeld = answerAll;
  const last = await scheduler.sweepHealth({ sweepId: 'health@group-commit-last' });
  expect(last?.summary.written).toBe(ENTRIES);
  expect(await disagreements(ids)).toEqual([]);
  const after = await batches('collection');
  // Some bulk write carried more than one entry.
  expect(after[0] - before[0]).toBeLessThan(ENTRIES);
  expect(after[0] - before[0]).toBeGreaterThan(after[1] - before[1]);
}, 240_000);
