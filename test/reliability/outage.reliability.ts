/**
 * Database outage: a FerretDB server of this test's own on a fixed loopback port, the built service as a
 * process on it, a steady (bounded) write load; the database is stopped for a few seconds and started
 * again on the same port and data directory.
 */
import { rmSync } from 'node:fs';
import { MongoClient } from 'mongodb';
import type { RunningEngine } from '../support/engines';
import { validateEntry } from '../../src/schemas';
import { entry } from '../support/entries';
import { eventually, freePort, send, sleep, startFerretdbAt, startServiceProcess, tally, tempDir, type Outcome, type ServiceProcess } from './support';

const WORKERS = 4;
/** A steady load, not a flood: each worker pauses PACE_MS between requests, so that the bounded count lasts the
 * whole outage (with _id lookups indexed, 4 unpaced workers used up 1,600 requests before the database stopped). */
const PACE_MS = 20;
const MAX_REQUESTS_PER_WORKER = 1500;
const OUTAGE_MS = 8000;

let db: RunningEngine | undefined;
let svc: ServiceProcess | undefined;
let dataDir: string;

afterAll(async () => {
  await svc?.stop();
  await db?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const isProblem503 = (o: Outcome) => o.status === 503 && o.contentType.startsWith('application/problem+json') && o.body?.status === 503;

test('When the database stops under a steady write load and comes back on the same port, then the service stays up, answers 503 problem+json meanwhile, becomes ready again without a restart, and every acknowledged write is readable and valid', async () => {
  dataDir = tempDir('outage-db');
  const port = await freePort();
  db = await startFerretdbAt(dataDir, port);
  svc = await startServiceProcess({ MONGODB_URI: db.uri });
  const base = svc.url;

  const outcomes: Outcome[] = [];
  const created: Array<{ id: string; name: string }> = [];
  const addedTags: Array<{ id: string; tag: string }> = [];
  const readiness: Array<{ at: number; status: number }> = [];
  let running = true;

  const worker = async (w: number) => {
    for (let i = 0; running && i < MAX_REQUESTS_PER_WORKER; i++) {
      const mine = created.filter((_, k) => k % WORKERS === w);
      if (i % 3 === 0 || mine.length === 0) {
        const body = entry({ container_registry_name: `outage-${w}-${i}-${Date.now()}` });
        const o = await send(base, 'POST', '/container_registry', body);
        outcomes.push(o);
        if (o.status === 201) created.push({ id: o.body.container_registry_id, name: String(body.container_registry_name) });
      } else if (i % 3 === 1) {
        const target = mine[i % mine.length]!;
        const tag = `t${w}-${i}`;
        const o = await send(base, 'PUT', `/container_registry/${target.id}`, { $addToSet: { container_registry_tags: tag } });
        outcomes.push(o);
        if (o.status === 200) addedTags.push({ id: target.id, tag });
      } else {
        outcomes.push(await send(base, 'GET', `/container_registry/${mine[i % mine.length]!.id}`));
      }
      await sleep(outcomes[outcomes.length - 1]!.status !== 201 && outcomes[outcomes.length - 1]!.status !== 200 ? 50 : PACE_MS);
    }
  };
  const readyPoller = async () => {
    for (let i = 0; running && i < 400; i++) {
      const o = await send(base, 'GET', '/readyz');
      readiness.push({ at: o.startedAt, status: o.status });
      await sleep(200);
    }
  };

  const load = Promise.all([...Array.from({ length: WORKERS }, (_, w) => worker(w)), readyPoller()]);
  await sleep(2000);
  const log = (m: string) => process.stderr.write(`[outage ${new Date().toISOString()}] ${m} (requests ${outcomes.length})\n`);
  log('stopping the database');
  await db.stop();
  log('database stopped');
  const downAt = Date.now();
  await sleep(OUTAGE_MS);
  const restartAt = Date.now();
  log('restarting the database');
  db = await startFerretdbAt(dataDir, port);
  log('database restarted');
  const readyAgain = await eventually(async () => (await send(base, 'GET', '/readyz')).status === 200, 30_000);
  // The load goes on until a create begun after the restart is stored (a bounded wait: the first writes after
  // a restart wait for the driver to find the server again), and 2 s more.
  const writesAgain = await eventually(async () => outcomes.some((o) => o.status === 201 && o.startedAt > restartAt), 30_000);
  await sleep(2000);
  const after = outcomes.filter((o) => o.startedAt > restartAt);
  log(`ready again: ${readyAgain}; writes again: ${writesAgain}; requests begun after the restart ${after.length}, their durations ${JSON.stringify(after.slice(0, 12).map((o) => o.endedAt - o.startedAt))} ms`);
  running = false;
  await load;
  log('load stopped');
  for (const l of svc.lines.filter((x) => x.message === 'unexpected error').slice(0, 5)) log(`service error: ${JSON.stringify(l.err).slice(0, 1500)}`);
  if (!readyAgain) {
    // Whose fault: does a fresh client reach the restarted server?
    const probe = new MongoClient(db.uri, { serverSelectionTimeoutMS: 5000 });
    const direct = await probe.db('admin').command({ ping: 1 }).then(() => 'answers', (e: Error) => `fails: ${e.message}`);
    await probe.close();
    log(`not ready after the restart; a fresh client's ping to the restarted database ${direct}`);
    for (const l of svc.lines.filter((x) => x.level === 'warn' && x.message !== 'request failed').slice(-10)) log(`service log: ${JSON.stringify(l).slice(0, 800)}`);
  }

  expect(svc.running()).toBe(true);
  expect(readyAgain).toBe(true);
  // Every request got an answer within its client timeout, and no answer was a 500.
  const unanswered = outcomes.filter((o) => o.status === 0);
  expect(tally(unanswered, (o) => o.error ?? '')).toEqual({});
  const statuses = tally(outcomes, (o) => o.status);
  expect(outcomes.filter((o) => o.status >= 500 && o.status !== 503)).toEqual([]);
  // While the database was away, every answer that needed it was a 503 problem+json.
  const duringOutage = outcomes.filter((o) => o.startedAt >= downAt && o.endedAt <= restartAt);
  log(`statuses ${JSON.stringify(statuses)}; during the outage ${JSON.stringify(tally(duringOutage, (o) => o.status))}; readyz ${JSON.stringify(tally(readiness, (r) => r.status))}`);
  expect(duringOutage.length).toBeGreaterThan(0);
  // Writes are refused with a 503 problem; a GET may still be answered from the replica's view (docs/queries.md).
  expect(duringOutage.filter((o) => !isProblem503(o) && !(o.method === 'GET' && o.status === 200))).toEqual([]);
  expect(outcomes.filter((o) => o.status === 503 && !isProblem503(o))).toEqual([]);
  // /readyz said so, and came back.
  expect(readiness.some((r) => r.at >= downAt && r.at < restartAt && r.status === 503)).toBe(true);
  expect(readiness.some((r) => r.at > restartAt && r.status === 200)).toBe(true);
  expect(readiness.filter((r) => r.status !== 200 && r.status !== 503)).toEqual([]);
  // Writes went through before and after the outage.
  expect(outcomes.some((o) => o.status === 201 && o.endedAt < downAt)).toBe(true);
  expect(outcomes.some((o) => o.status === 201 && o.startedAt > restartAt)).toBe(true);

  // Every acknowledged create is readable and valid; every acknowledged tag is there.
  const problems: string[] = [];
  const byId = new Map<string, any>();
  for (const c of created) {
    const o = await send(base, 'GET', `/container_registry/${c.id}`);
    if (o.status !== 200) {
      problems.push(`${c.id}: GET ${o.status}`);
      continue;
    }
    byId.set(c.id, o.body);
    if (o.body.container_registry_name !== c.name) problems.push(`${c.id}: name ${o.body.container_registry_name} != ${c.name}`);
  }
  for (const { id, tag } of addedTags) {
    if (!byId.get(id)?.container_registry_tags?.includes(tag)) problems.push(`${id}: acknowledged tag ${tag} missing`);
  }
  // Nothing half-written: every stored entry (including creates whose answer was a 503) validates as a whole.
  const all = await send(base, 'POST', '/container_registries?limit=1000', {});
  expect(all.status).toBe(200);
  for (const doc of all.body as unknown[]) {
    try {
      validateEntry(doc);
    } catch (e) {
      problems.push(`invalid stored entry: ${(e as Error).message}`);
    }
  }
  expect(problems).toEqual([]);
  expect((all.body as unknown[]).length).toBeGreaterThanOrEqual(created.length);
  log(`verified: ${created.length} acknowledged creates, ${addedTags.length} acknowledged tags, ${(all.body as unknown[]).length} stored entries valid`);
});
