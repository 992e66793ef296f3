/**
 * One robustness run on one engine: the database (with a TCP proxy per replica in front of it), three
 * replicas, a peer following one of them, loopback registries for the sweeps, the clients, the followers
 * and the faults; then a quiescent end (replicas started again without sweeps, every follower at the head)
 * where the final state, the change log and the collection are read. Everything is written to `dir` as
 * a history (history.ts) for the checkers.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { startDatabase, type Database, type Engine } from './engines';
import { FaultInjector } from './faults';
import { LongPollFollower, PeerRecorder, SseFollower, type Follower } from './followers';
import { saveHistory, snap, type FinalState, type History, type LogRecord, type Snap } from './history';
import { Clock, send } from './http';
import { freePort, ServiceProcess, sleep } from './processes';
import { BEHAVIOURS, startFakeRegistry, type FakeRegistry } from './registries';
import { startTcpProxy, type TcpProxy } from './tcp-proxy';
import { Traffic, type Slot } from './traffic';
import { LogIndex } from './check/log';
import { stateDiff } from './check/watch';

export interface Profile {
  mode: 'quick' | 'full';
  trafficMs: number;
  clients: number;
  slots: number;
  idsPerSlot: number;
  faultEveryMs: [number, number];
  thinkMs: [number, number];
}

export const PROFILES: Record<'quick' | 'full', Profile> = {
  quick: { mode: 'quick', trafficMs: 100_000, clients: 6, slots: 4, idsPerSlot: 2, faultEveryMs: [4000, 8000], thinkMs: [10, 60] },
  full: { mode: 'full', trafficMs: 600_000, clients: 10, slots: 6, idsPerSlot: 3, faultEveryMs: [5000, 9000], thinkMs: [5, 40] },
};

const REPLICAS = 3;
const DB_NAME = 'robustness';
const PEER_DB_NAME = 'robustness_peer';
const TAGS = ['t0', 't1', 't2', 't3'];
/** A reservation left by a dead writer is taken over after 30 s (src/registries/names.ts); some room on top. */
const RESERVATION_WINDOW_US = 40_000_000;
const CLIENT_TIMEOUT_MS = 10_000;

interface Cluster {
  database: Database;
  proxies: TcpProxy[];
  registries: FakeRegistry[];
  replicas: ServiceProcess[];
  peer: ServiceProcess;
  recorder: PeerRecorder;
}

const log = (m: string) => process.stdout.write(`  ${m}\n`);

function serviceEnv(over: Record<string, string>): Record<string, string> {
  return {
    PROBE_ALLOWED_NETWORKS: '127.0.0.0/8,::1/128',
    HEALTH_CRON: '*/3 * * * * *',
    STORAGE_CRON: 'off',
    PROBE_TIMEOUT_MS: '2000',
    LOG_LEVEL: 'info',
    RATE_LIMIT_MAX: '0',
    PROBE_RATE_LIMIT_MAX: '0',
    AUTH_FAILURE_LIMIT: '0',
    FEED_BOOKMARK_S: '1',
    // Nothing is compacted during a run: the checkers read the whole log at the end.
    FEED_COMPACT_AFTER_S: '86400',
    SHUTDOWN_TIMEOUT_MS: '5000',
    ...over,
  };
}

async function startCluster(engine: Engine, work: string, dir: string, clock: Clock): Promise<Cluster> {
  const c: Partial<Cluster> & { proxies: TcpProxy[]; registries: FakeRegistry[]; replicas: ServiceProcess[] } = { proxies: [], registries: [], replicas: [] };
  try {
    const database = (c.database = await startDatabase(engine, path.join(work, 'db'), await freePort()));
    for (let i = 0; i < REPLICAS; i++) c.proxies.push(await startTcpProxy(database.port));
    for (const b of BEHAVIOURS) c.registries.push(await startFakeRegistry(b));
    const key = randomBytes(32).toString('base64');
    for (let i = 0; i < REPLICAS; i++) {
      const env = serviceEnv({ MONGODB_URI: `mongodb://127.0.0.1:${c.proxies[i]!.port}/`, MONGODB_DB: DB_NAME, CREDENTIALS_KEY: key, DATA_DIR: path.join(work, `replica-${i}`) });
      const r = new ServiceProcess(`replica ${i}`, await freePort(), env, path.join(dir, `replica-${i}.log`));
      c.replicas.push(r);
      await r.start();
    }
    const recorder = (c.recorder = new PeerRecorder(c.replicas[0]!.url, 0, clock));
    await recorder.listen();
    const peerEnv = serviceEnv({
      MONGODB_URI: database.uri,
      MONGODB_DB: PEER_DB_NAME,
      CREDENTIALS_KEY: key,
      DATA_DIR: path.join(work, 'peer'),
      HEALTH_CRON: 'off',
      PEERS: `src=${recorder.url}`,
      PEER_STALE_AFTER_S: '10',
    });
    c.peer = new ServiceProcess('peer', await freePort(), peerEnv, path.join(dir, 'peer.log'));
    await c.peer.start();
    return c as Cluster;
  } catch (e) {
    await stopCluster(c).catch(() => undefined);
    throw e;
  }
}

/** Stops whatever of the cluster was started. */
async function stopCluster(c: Partial<Cluster>): Promise<void> {
  const processes = [...(c.replicas ?? []), ...(c.peer ? [c.peer] : [])];
  await Promise.all(processes.map((p) => p.stop().then(() => p.close())));
  await c.recorder?.stop();
  await Promise.all((c.proxies ?? []).map((p) => p.close()));
  await Promise.all((c.registries ?? []).map((r) => r.close()));
  await c.database?.stop();
}

/** Polls `check` until it answers true or `ms` passed; answers whether it did. */
async function until(check: () => Promise<boolean>, ms: number, everyMs = 500): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check().catch(() => false)) return true;
    await sleep(everyMs);
  }
  return false;
}

async function viewRevision(url: string): Promise<number | undefined> {
  const a = await send(`${url}/container_registries/changes?since=0&limit=1`, 'GET', undefined, 5000);
  const r = a.headers?.get('x-catalog-revision');
  return a.status === 200 && r ? Number(r) : undefined;
}

/** The replicas started again without sweeps, so nothing writes any more; answers the head they agree on. */
async function quiesce(c: Cluster): Promise<number> {
  for (const r of c.replicas) {
    await r.kill();
    r.env = { ...r.env, HEALTH_CRON: 'off' };
    await r.start();
  }
  let last = -1;
  let head = -1;
  await until(async () => {
    const revs = await Promise.all(c.replicas.map((r) => viewRevision(r.url)));
    const same = revs.every((r) => r !== undefined && r === revs[0]);
    const stable = same && revs[0] === last;
    last = same ? revs[0]! : -1;
    if (stable) head = last;
    return stable;
  }, 30_000, 1500);
  return head;
}

async function peerPosition(peer: ServiceProcess): Promise<number | null> {
  const a = await send(`${peer.url}/peers`, 'GET', undefined, 5000);
  const src = Array.isArray(a.body) ? (a.body as Array<{ name: string; revision: number | null }>).find((p) => p.name === 'src') : undefined;
  return src?.revision ?? null;
}

async function readList(url: string): Promise<{ revision: number; epoch: string; changes: Array<{ entry?: Record<string, unknown> }> }> {
  const a = await send(`${url}/container_registries/changes?since=0&limit=5000`, 'GET', undefined, 10_000);
  if (a.status !== 200) throw new Error(`GET ${url}/container_registries/changes answered ${a.status || a.error}`);
  return a.body as { revision: number; epoch: string; changes: Array<{ entry?: Record<string, unknown> }> };
}

/** The change log and the collection, read from the database itself. */
async function readDatabase(uri: string): Promise<{ log: LogRecord[]; collection: Snap[] }> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5000 });
  await client.connect();
  try {
    const db = client.db(DB_NAME);
    const recs = await db.collection('catalog_changes').find({}).toArray();
    const docs = await db.collection('container_registries').find({}).toArray();
    return {
      log: recs.map((d) => ({ r: d.r as number, key: d.key as string, prev: d.prev as number, op: d.op as LogRecord['op'], w: d.w as string, ...(d.doc ? { doc: snap(d.doc as Record<string, unknown>) } : {}) })),
      collection: docs.map((d) => snap(d as Record<string, unknown>)),
    };
  } finally {
    await client.close();
  }
}

/** Reads the database until the collection holds the log's final state (a repair may be due), for at most `ms`. */
async function settledDatabase(uri: string, ms: number): Promise<{ log: LogRecord[]; collection: Snap[] }> {
  let read = await readDatabase(uri);
  await until(async () => {
    read = await readDatabase(uri);
    const idx = new LogIndex(read.log);
    return stateDiff(idx.stateAt(idx.head), new Map(read.collection.map((s) => [s.id, s]))).length === 0;
  }, ms, 1000);
  return read;
}

async function finalState(c: Cluster): Promise<{ final: FinalState; log: LogRecord[] }> {
  const lists = [];
  for (const [i, r] of c.replicas.entries()) {
    const l = await readList(r.url);
    lists.push({ replica: i, revision: l.revision, epoch: l.epoch, items: l.changes.filter((ch) => ch.entry).map((ch) => snap(ch.entry!)) });
  }
  const peerList = await readList(c.peer.url);
  const peerItems = peerList.changes
    .filter((ch) => ch.entry)
    .map((ch) => ({ ...snap(ch.entry!), originRevision: Number((ch.entry!.container_registry_origin as { revision?: number } | undefined)?.revision) }));
  const { log: records, collection } = await settledDatabase(c.database.uri, 20_000);
  return { final: { lists, collection, peer: { position: await peerPosition(c.peer), items: peerItems } }, log: records };
}

export interface ScenarioResult {
  history: History;
  durationMs: number;
}

export async function runScenario(engine: Engine, profile: Profile, dir: string): Promise<ScenarioResult> {
  const started = Date.now();
  mkdirSync(dir, { recursive: true });
  const work = mkdtempSync(path.join(os.tmpdir(), `registry-db-robustness-${engine}-`));
  const clock = new Clock();
  const c = await startCluster(engine, work, dir, clock);
  const followers: Follower[] = [];
  try {
    log(`${engine}: database on port ${c.database.port}, replicas ${c.replicas.map((r) => r.url).join(' ')}, peer ${c.peer.url}`);
    const slots: Slot[] = Array.from({ length: profile.slots }, (_, i) => ({
      name: `robust-slot-${i}`,
      ids: Array.from({ length: profile.idsPerSlot }, () => randomUUID()),
      url: c.registries[i % c.registries.length]!.url,
    }));
    const urls = c.replicas.map((r) => r.url);
    const longpoll = new LongPollFollower(urls, clock);
    const sse = new SseFollower(urls, clock);
    followers.push(longpoll, sse, c.recorder);
    longpoll.start();
    sse.start();
    const traffic = new Traffic({ clients: profile.clients, replicas: urls, slots, tags: TAGS, clock, timeoutMs: CLIENT_TIMEOUT_MS, thinkMs: profile.thinkMs });
    const faults = new FaultInjector({ replicas: c.replicas, proxies: c.proxies, database: c.database, clock }, profile.faultEveryMs);
    traffic.start();
    faults.start();
    await sleep(profile.trafficMs);
    await faults.stop();
    await traffic.stop();
    log(`${engine}: ${traffic.operations.length} operations, ${faults.faults.length} faults; quiescing`);
    const head = await quiesce(c);
    const reached = await until(async () => longpoll.position() >= head && sse.position() >= head && c.recorder.position() >= head && ((await peerPosition(c.peer)) ?? -1) >= head, 45_000);
    if (!reached) log(`${engine}: not every follower reached the head ${head} (longpoll ${longpoll.position()}, sse ${sse.position()}, peer ${c.recorder.position()}); the checks will say`);
    await longpoll.stop();
    await sse.stop();
    const { final, log: records } = await finalState(c);
    const history: History = {
      meta: {
        engine,
        mode: profile.mode,
        startedAt: new Date(started).toISOString(),
        durationMs: Date.now() - started,
        slots: slots.map((s) => ({ name: s.name, ids: s.ids })),
        tags: TAGS,
        clients: profile.clients,
        replicas: REPLICAS,
        reservationWindowUs: RESERVATION_WINDOW_US,
      },
      operations: traffic.operations,
      followers: followers.map((f) => f.history),
      log: records,
      faults: faults.faults,
      final,
    };
    saveHistory(dir, history);
    return { history, durationMs: Date.now() - started };
  } finally {
    await Promise.all(followers.map((f) => f.stop().catch(() => undefined)));
    await stopCluster(c).catch((e) => log(`stopping the cluster: ${(e as Error).message}`));
    rmSync(work, { recursive: true, force: true });
  }
}
