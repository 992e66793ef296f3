/**
 * The change feed under faults (issue 10, SPEC 12): three service processes on one database, concurrent
 * creates, updates and deletes through all of them, probes (on-demand checks and 6-second sweeps of a real
 * docker-registry and of dead loopback ports), one consumer following the feed through long polls and
 * another through Server-Sent Events dropped at random points and resumed with Last-Event-ID, each moving
 * between replicas. At the end each consumer's copy (id → version and revision) equals the catalog in the
 * database. Repeated with a writer killed with SIGKILL mid-run, and with the database stopped and started
 * again mid-run. Loopback only; a few hundred operations per scenario.
 */
import { TEST_CREDENTIALS_KEY } from '../support/service';
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import type { RunningEngine } from '../support/engines';
import { VERIFY_AFTER_MS } from '../../src/feed/reader';
import { entry } from '../support/entries';
import { catalogFromDb, FeedCopy, openSse, type FeedChange, type Held } from '../support/feed';
import { startRegistry, stopAllRegistries, type RunningRegistry } from '../support/registries';
import { testDbName } from '../support/service';
import { freePort, send, sleep, startFerretdbAt, startServiceProcess, tally, tempDir, type Outcome, type ServiceProcess } from './support';

const WRITERS = 3;
const WORKERS = 3;
const OPS_PER_WORKER = 30;
const SHARED = 4;

jest.setTimeout(180_000);

let registry: RunningRegistry;
const processes: ServiceProcess[] = [];
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  registry = await startRegistry();
});
afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop(5000)));
  for (const c of cleanups) await c();
  await stopAllRegistries();
});

const log = (tag: string, m: string) => process.stderr.write(`[feed ${tag} ${new Date().toISOString().slice(11, 23)}] ${m}\n`);
const pick = <T>(xs: T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

/** Replicas a client may talk to now (the test takes a replica out before killing or stopping it). */
class Pool {
  urls: string[] = [];
  any(): string | undefined {
    return this.urls.length > 0 ? pick(this.urls) : undefined;
  }
}

/** Follows the feed through long polls, from any replica; never stops on an error. */
async function longPollConsumer(pool: Pool, copy: FeedCopy, running: () => boolean, stats: Record<string, number>): Promise<void> {
  while (running()) {
    const base = pool.any();
    if (!base) {
      await sleep(100);
      continue;
    }
    const o = await send(base, 'GET', `/container_registries/changes?since=${copy.revision}&wait=1&limit=200`, undefined, {}, 10_000);
    stats[String(o.status || o.error)] = (stats[String(o.status || o.error)] ?? 0) + 1;
    if (o.status !== 200) {
      if (o.status !== 0 && o.status !== 503) copy.violations.push(`long poll ${o.status}: ${JSON.stringify(o.body).slice(0, 300)}`);
      await sleep(100);
      continue;
    }
    for (const c of o.body.changes as FeedChange[]) copy.apply(c);
    copy.reach(o.body.revision);
  }
}

/** Follows the feed through SSE, dropping the stream after a random 0.1-1.5 s and resuming elsewhere with Last-Event-ID. */
async function sseConsumer(pool: Pool, copy: FeedCopy, running: () => boolean, stats: Record<string, number>): Promise<void> {
  while (running()) {
    const base = pool.any();
    if (!base) {
      await sleep(100);
      continue;
    }
    let s;
    try {
      s = await openSse(`${base}/container_registries/changes?since=0`, copy.revision > 0 ? { 'Last-Event-ID': String(copy.revision) } : {});
    } catch {
      stats.refused = (stats.refused ?? 0) + 1;
      await sleep(100);
      continue;
    }
    stats[String(s.status)] = (stats[String(s.status)] ?? 0) + 1;
    if (s.status !== 200) {
      if (s.status !== 503) copy.violations.push(`stream ${s.status}`);
      s.abort();
      await sleep(100);
      continue;
    }
    await Promise.race([s.ended, sleep(100 + Math.random() * 1400)]);
    s.abort();
    await s.ended;
    // Events are applied in the order they came; a partial event at the cut is not an event (sent again after resume).
    for (const e of s.events) {
      if (e.event === 'bookmark') copy.reach(Number(e.id));
      else if (e.event === 'upsert' || e.event === 'delete') {
        const c = JSON.parse(e.data) as FeedChange;
        if (String(c.revision) !== e.id) copy.violations.push(`event id ${e.id} for change ${c.revision}`);
        copy.apply(c);
      }
    }
  }
}

interface Scenario {
  name: string;
  uri: string;
  /** Runs mid-way through the load, with the writers and the pool of replicas clients use. */
  fault?: (writers: ServiceProcess[], pool: Pool) => Promise<void>;
}

function isAcceptable(o: Outcome): boolean {
  if (o.status === 0) return true; // a killed replica or a client timeout during the fault: judged by the copies
  if (o.status >= 500) return o.status === 503 && o.contentType.startsWith('application/problem+json');
  return true;
}

async function runScenario(sc: Scenario): Promise<void> {
  const started = Date.now();
  const dbName = testDbName();
  let writing = true;
  const env = { MONGODB_URI: sc.uri, MONGODB_DB: dbName, HEALTH_CRON: '*/6 * * * * *', RATE_LIMIT_WINDOW_MS: '600000' };
  const writers = await Promise.all(Array.from({ length: WRITERS }, () => startServiceProcess(env)));
  processes.push(...writers);
  for (const w of writers) {
    void w.exited.then((code) => {
      if (writing) log(sc.name, `writer ${w.url} exited (${code}): ${w.stderr().slice(-3000)} ${JSON.stringify(w.lines.filter((l) => l.level === 'error').slice(-3))}`);
    });
  }
  const pool = new Pool();
  pool.urls = writers.map((w) => w.url);
  log(sc.name, `${WRITERS} writers up in ${Date.now() - started} ms`);

  const outcomes: Outcome[] = [];
  const track = async (p: Promise<Outcome>) => {
    const o = await p;
    outcomes.push(o);
    return o;
  };
  const createOne = async (overrides: Record<string, unknown> = {}) => {
    for (let i = 0; i < 20; i++) {
      const o = await track(send(pool.any()!, 'POST', '/container_registry', entry(overrides)));
      if (o.status === 201) return String(o.body.container_registry_id);
      await sleep(200);
    }
    throw new Error('could not create an entry');
  };
  // Probed entries: a real registry and dead loopback ports; shared entries everyone updates.
  const dead = await Promise.all([0, 1, 2].map(() => freePort()));
  const probed = [
    ...(await Promise.all([0, 1, 2].map((i) => createOne({ container_registry_name: `probe-live-${i}`, container_registry_public_url: registry.url })))),
    ...(await Promise.all(dead.map((port, i) => createOne({ container_registry_name: `probe-dead-${i}`, container_registry_public_url: `http://127.0.0.1:${port}` })))),
  ];
  const shared = await Promise.all(Array.from({ length: SHARED }, (_, i) => createOne({ container_registry_name: `shared-${i}` })));

  // Consumers start now (from 0: a list, then the changes).
  let consuming = true;
  const polled = new FeedCopy();
  const streamed = new FeedCopy();
  const pollStats: Record<string, number> = {};
  const sseStats: Record<string, number> = {};
  const consumers = Promise.all([longPollConsumer(pool, polled, () => consuming, pollStats), sseConsumer(pool, streamed, () => consuming, sseStats)]);

  const worker = async (w: number) => {
    const mine: string[] = [];
    for (let i = 0; writing && i < OPS_PER_WORKER; i++) {
      const base = pool.any();
      if (!base) break;
      const roll = Math.random();
      if (mine.length < 3 || roll < 0.3) {
        const o = await track(send(base, 'POST', '/container_registry', entry({ container_registry_name: `w${w}-${i}-${Date.now() % 100000}` })));
        if (o.status === 201) mine.push(String(o.body.container_registry_id));
      } else if (roll < 0.55) {
        await track(send(base, 'PUT', `/container_registry/${pick(mine)}`, { $set: { 'container_registry_metadata.owner': `w${w}-${i}` } }));
      } else if (roll < 0.75) {
        await track(send(base, 'PUT', `/container_registry/${pick(shared)}`, { $addToSet: { container_registry_tags: `w${w}-${i}` } }));
      } else if (roll < 0.9) {
        const id = mine.splice(Math.floor(Math.random() * mine.length), 1)[0]!;
        await track(send(base, 'DELETE', `/container_registry/${id}`));
      } else {
        await track(send(base, 'GET', `/check_container_health/${pick(probed)}`));
      }
      await sleep(50 + Math.random() * 50);
    }
  };
  const load = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
  if (sc.fault) {
    await sleep(4000);
    await sc.fault(writers, pool);
  }
  await load;
  writing = false;
  log(sc.name, `load done: ${outcomes.length} requests ${JSON.stringify(tally(outcomes, (o) => o.status || o.error!))}`);

  // Quiesce: the writers (and their sweeps) stop; a verifier with no sweeps serves the consumers the end.
  pool.urls = [];
  await Promise.all(writers.filter((w) => w.running()).map((w) => w.stop(15_000)));
  const verifier = await startServiceProcess({ ...env, HEALTH_CRON: 'off' });
  processes.push(verifier);
  pool.urls = [verifier.url];
  // The head: the highest revision the database holds (a page's `revision` with a limit is only where that page
  // ends). Changes behind a hole a killed writer left come once it is filled (FEED_HOLE_FILL_MS), so wait for it.
  const dbHead = await (async () => {
    const c = new MongoClient(sc.uri, { serverSelectionTimeoutMS: 10_000 });
    await c.connect();
    try {
      return Math.max(0, ...Object.values(await catalogFromDb(c.db(dbName).collection('container_registries'))).map((h) => h.revision));
    } finally {
      await c.close();
    }
  })();
  const head = Math.max(dbHead, Number((await send(verifier.url, 'GET', '/container_registries/changes?since=0&limit=5000')).body.revision));
  const caughtUp = async () => {
    const until = Date.now() + 20_000;
    while (Date.now() < until && (polled.revision < head || streamed.revision < head)) await sleep(100);
  };
  await caughtUp();
  consuming = false;
  await consumers;
  log(sc.name, `head ${head}; long poll at ${polled.revision} (${polled.applied} changes, ${JSON.stringify(pollStats)}); SSE at ${streamed.revision} (${streamed.applied} changes, ${JSON.stringify(sseStats)})`);

  const client = new MongoClient(sc.uri, { serverSelectionTimeoutMS: 10_000 });
  await client.connect();
  try {
    const db = client.db(dbName);
    let catalog = await catalogFromDb(db.collection('container_registries'));
    const fills = await db.collection('catalog_changes').countDocuments({ op: 'fill' });
    let page = (await send(verifier.url, 'GET', '/container_registries/changes?since=0&limit=5000')).body as { revision: number; changes: FeedChange[] };
    for (const until = Date.now() + 20_000; page.revision < head && Date.now() < until; await sleep(100)) {
      page = (await send(verifier.url, 'GET', '/container_registries/changes?since=0&limit=5000')).body as { revision: number; changes: FeedChange[] };
    }
    const listed = page.changes;
    const fromList: Record<string, Held> = Object.fromEntries(listed.map((c) => [c.container_registry_id, { version: Number(c.entry!.version), revision: c.revision }]).sort(([a], [b]) => String(a).localeCompare(String(b))));
    // The collection catches up with the log where a writer died (or the database went away) between the two
    // writes: the verifier checks the newest changes at start, after VERIFY_AFTER_MS.
    const lagged = diff(fromList, catalog);
    for (const until = Date.now() + VERIFY_AFTER_MS + 15_000; diff(fromList, catalog).length > 0 && Date.now() < until; await sleep(500)) {
      catalog = await catalogFromDb(db.collection('container_registries'));
    }
    log(sc.name, `catalog ${Object.keys(catalog).length} entries; fills in the log ${fills}; collection behind the log at first: ${JSON.stringify(lagged)}; ${Math.round((Date.now() - started) / 1000)} s`);
    const apart = diff(fromList, catalog);
    if (apart.length > 0 || polled.revision < head || streamed.revision < head) {
      // What the log holds for the entries that differ, and at its end: the facts to explain a failure with.
      const ids = apart.map((d) => d.replace(/^(missing |extra )?([^:( ]+).*$/, '$2'));
      const records = await db.collection('catalog_changes').find({ $or: [{ key: { $in: ids } }, { r: { $gte: Math.min(polled.revision, streamed.revision) - 3 } }] }, { projection: { doc: 0 } }).toArray();
      log(sc.name, `log records of the differing entries and near the head: ${JSON.stringify(records)}`);
      log(sc.name, `meta: ${JSON.stringify(await db.collection('catalog_changes_meta').find().toArray())}`);
      for (const w of [...writers, verifier]) {
        const lines = w.lines.filter((l) => l.level !== 'info' || /change|feed|log/.test(String(l.message)));
        log(sc.name, `${w.url} warnings: ${JSON.stringify(lines.map((l) => `${String(l.timestamp).slice(11, 23)} ${l.level} ${l.message} ${JSON.stringify({ ...l, timestamp: undefined, level: undefined, message: undefined, service: undefined })}`).slice(-40))}`);
      }
    }

    expect(outcomes.filter((o) => !isAcceptable(o)).map((o) => `${o.method} ${o.path} ${o.status} ${JSON.stringify(o.body).slice(0, 200)}`)).toEqual([]);
    expect({ long_poll: polled.violations, sse: streamed.violations }).toEqual({ long_poll: [], sse: [] });
    expect(polled.revision).toBeGreaterThanOrEqual(head);
    expect(streamed.revision).toBeGreaterThanOrEqual(head);
    // The log (through a replica started afterwards) and the database agree, and each consumer holds exactly that.
    expect(diff(fromList, catalog)).toEqual([]);
    expect(diff(polled.snapshot(), catalog)).toEqual([]);
    expect(diff(streamed.snapshot(), catalog)).toEqual([]);
    expect(Object.keys(catalog).length).toBeGreaterThan(probed.length + shared.length);
  } finally {
    await client.close();
    await verifier.stop(5000);
  }
}

/** Readable differences between two copies of the catalog. */
function diff(got: Record<string, Held>, want: Record<string, Held>): string[] {
  const out: string[] = [];
  for (const [id, w] of Object.entries(want)) {
    const g = got[id];
    if (!g) out.push(`missing ${id} (v${w.version} r${w.revision})`);
    else if (g.version !== w.version || g.revision !== w.revision) out.push(`${id}: v${g.version} r${g.revision}, catalog v${w.version} r${w.revision}`);
  }
  for (const id of Object.keys(got)) if (!want[id]) out.push(`extra ${id} (v${got[id]!.version} r${got[id]!.revision})`);
  return out;
}

test('When three replicas take concurrent writes and probes, then a long-poll consumer and an SSE consumer with forced reconnects both end with exactly the catalog', async () => {
  await runScenario({ name: 'steady', uri: process.env.TEST_MONGODB_URI! });
});

test('When a writer is killed with SIGKILL mid-run, then the feed keeps moving (its holes are filled) and both consumers end with exactly what the database holds', async () => {
  await runScenario({
    name: 'sigkill',
    uri: process.env.TEST_MONGODB_URI!,
    fault: async (writers, pool) => {
      const victim = writers[WRITERS - 1]!;
      pool.urls = pool.urls.filter((u) => u !== victim.url);
      // Its clients' requests already in flight are cut at a random point.
      await sleep(Math.random() * 30);
      victim.child.kill('SIGKILL');
      await victim.exited;
      log('sigkill', 'writer killed');
    },
  });
});

test('When the database is stopped and started again mid-run, then both consumers end with exactly the catalog', async () => {
  const dataDir = tempDir('feed-db');
  const port = await freePort();
  let db: RunningEngine = await startFerretdbAt(dataDir, port);
  cleanups.push(async () => {
    await db.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  await runScenario({
    name: 'db-restart',
    uri: db.uri,
    fault: async () => {
      await db.stop();
      log('db-restart', 'database stopped');
      await sleep(5000);
      db = await startFerretdbAt(dataDir, port);
      log('db-restart', 'database restarted');
    },
  });
});

/** All ids a replica's queries answer for `filter`, page by page (Link rel=next); undefined when a page fails. */
async function listIds(base: string, filter: object): Promise<Set<string> | undefined> {
  const ids = new Set<string>();
  let next: string | undefined = '/container_registries?limit=1000&fields=container_registry_name';
  while (next) {
    const res: Response | undefined = await fetch(base + next, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(filter), signal: AbortSignal.timeout(15_000) }).catch(() => undefined);
    if (res?.status !== 200) {
      log('seed', `listing ${next}: ${res?.status ?? 'no answer'} ${res ? (await res.text()).slice(0, 300) : ''}`);
      return undefined;
    }
    for (const e of (await res.json()) as Array<{ container_registry_id: string }>) ids.add(e.container_registry_id);
    next = /<([^>]+)>; rel="next"/.exec(res.headers.get('link') ?? '')?.[1];
  }
  return ids;
}

const SEEDED = Number(process.env.FEED_TEST_SEEDED ?? 3000);
/** How long the test waits for every seeded entry in a replica's answers: a bound on the wait, not a target (CI's loaded legs took 22 s). */
const VISIBLE_WITHIN_MS = 60_000;

test('When the seed script onboards thousands of entries into the database of two running replicas while a client queries them, then every entry reaches the query answers of both replicas (the lag is logged)', async () => {
  const dbName = testDbName();
  const env = { MONGODB_URI: process.env.TEST_MONGODB_URI!, MONGODB_DB: dbName, HEALTH_CRON: 'off' };
  const replicas = await Promise.all([0, 1].map(() => startServiceProcess(env)));
  processes.push(...replicas);
  const dir = tempDir('seed-feed');
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  const tag = `seeded-${Date.now()}`;
  const file = path.join(dir, 'entries.json');
  writeFileSync(file, JSON.stringify(Array.from({ length: SEEDED }, (_, i) => entry({ container_registry_name: `seeded-${i}`, container_registry_tags: [tag] }))));

  // A client queries both replicas all along.
  let querying = true;
  const answers: Outcome[] = [];
  const querier = (async () => {
    while (querying) {
      for (const r of replicas) answers.push(await send(r.url, 'POST', '/container_registries?limit=100', { container_registry_tags: tag }));
      await sleep(100);
    }
  })();

  const seedStarted = Date.now();
  const seeded = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [path.join(process.env.RELIABILITY_BUILD!, 'src', 'seed', 'cli.js'), file], { env: { PATH: process.env.PATH, ...env, DATA_DIR: dir, CREDENTIALS_KEY: TEST_CREDENTIALS_KEY }, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
  const finished = Date.now();
  expect({ code: seeded.code, summary: seeded.stdout.trim().split('\n').pop() }).toEqual({ code: 0, summary: `${SEEDED} entries: ${SEEDED} created, 0 updated, 0 unchanged, 0 invalid, 0 failed` });

  // Each replica: how long after the script finished until a query answer holds every entry.
  const lags = await Promise.all(
    replicas.map(async (r) => {
      for (;;) {
        const ids = await listIds(r.url, { container_registry_tags: tag });
        if (ids?.size === SEEDED) return Date.now() - finished;
        const feedAt = await fetch(`${r.url}/container_registries/changes?since=0&limit=1`).then((x) => x.headers.get('x-catalog-revision'), () => undefined);
        log('seed', `${r.url} +${Date.now() - finished} ms: ${ids?.size ?? 'a page failed'} listed; its feed at revision ${feedAt}`);
        if (Date.now() - finished > VISIBLE_WITHIN_MS) return Number.POSITIVE_INFINITY;
        await sleep(20);
      }
    }),
  );
  querying = false;
  await querier;
  for (const r of replicas) for (const l of r.lines.filter((x) => String(x.message).startsWith('change')).slice(-6)) log('seed', `${r.url}: ${JSON.stringify(l).slice(0, 600)}`);
  log('seed', `seeded ${SEEDED} in ${finished - seedStarted} ms; all visible after the script finished: ${lags.map((l) => `${l} ms`).join(', ')} (includes one full paged listing); queries meanwhile ${JSON.stringify(tally(answers, (o) => o.status || o.error!))}`);
  expect(answers.filter((o) => !isAcceptable(o) || o.status === 0)).toEqual([]);
  // Every entry arrives in both replicas' answers (a timed target belongs to the benchmark, not to a test:
  // the lag is logged above; on an idle machine it is well under the 1 s of SPEC 13, on a loaded one seconds).
  for (const lag of lags) expect(lag).toBeLessThan(Number.POSITIVE_INFINITY);
}, 240_000);
