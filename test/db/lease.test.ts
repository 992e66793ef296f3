/**
 * The one lease primitive (src/db/lease.ts) behind sweep claims, webhook deliverers and peer followers, on a
 * real database server: takeover after expiry, renewal, a frozen holder fenced out when it wakes, named terms
 * won once, and a database outage in the middle of a holder's term (a FerretDB of this test's own, stopped and
 * started again on the same port and data).
 */
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { MongoClient } from 'mongodb';
import { LeaseHolder, Leases } from '../../src/db/lease';
import type { RunningEngine } from '../support/engines';
import { freePort, startFerretdbAt, tempDir } from '../reliability/support';
import { useTestDatabase } from '../support/database';

const database = useTestDatabase();

/** Two replicas' views of one scope, each with its own holder identity. */
async function pair(ttlMs: number, scope = `s-${Math.random().toString(36).slice(2)}`): Promise<[Leases, Leases]> {
  const a = new Leases(database.db, scope, ttlMs);
  const b = new Leases(database.db, scope, ttlMs);
  await a.ensureIndexes();
  return [a, b];
}

test('When a key is free, then exactly one of many racing replicas takes it, and the others see who holds it', async () => {
  const replicas = Array.from({ length: 8 }, () => new Leases(database.db, 'race', 10_000));
  await replicas[0]!.ensureIndexes();
  const won = await Promise.all(replicas.map((l) => l.acquire('k')));
  expect(won.filter(Boolean)).toHaveLength(1);
  const winner = replicas[won.findIndex(Boolean)]!;
  for (const l of replicas) expect(await l.holder('k')).toBe(winner.owner);
  // The holder asking again keeps its term.
  expect((await winner.acquire('k'))?.gen).toBe(won.find(Boolean)!.gen);
});

test('When the holder renews within its time, then nobody takes the key over; when it stops renewing, then another replica does and the old holder learns it lost', async () => {
  const [a, b] = await pair(400);
  const held = (await a.acquire('k'))!;
  for (let i = 0; i < 6; i++) {
    await sleep(150);
    expect(await a.renew(held)).toBe(true);
    expect(await b.acquire('k')).toBeUndefined();
  }
  await sleep(500);
  const taken = (await b.acquire('k'))!;
  expect(taken.gen).toBe(held.gen + 1);
  expect(await b.holder('k')).toBe(b.owner);
  expect(await a.renew(held)).toBe(false);
  expect(await a.isCurrent(held)).toBe(false);
  expect(await b.isCurrent(taken)).toBe(true);
});

test('When a holder is frozen past its time and wakes up, then its fence says it lost and its loop sees "lost" before acting', async () => {
  const [a, b] = await pair(300);
  const holderA = new LeaseHolder(a, 'k');
  const holderB = new LeaseHolder(b, 'k');
  expect(await holderA.hold()).toBe('acquired');
  expect(await holderB.hold()).toBe('lost');
  // A freezes (no call at all) longer than its lease; B takes over.
  await sleep(450);
  expect(await holderB.hold()).toBe('acquired');
  expect(await holderA.hold()).toBe('lost');
  expect(await holderB.hold()).toBe('held');
  // B gives the key up (a clean stop): A takes it at once, without waiting for the expiry.
  await holderB.release();
  expect(await holderA.hold()).toBe('acquired');
});

test('When the term is named (a sweep), then each key is won once per term, the terms of other replicas are fenced by time, and released claims are not handed out again', async () => {
  const [a, b] = await pair(60_000);
  const keys = ['r1', 'r2', 'r3', 'r4'];
  const [wonA, wonB] = await Promise.all([a.claim(keys, 'sweep-1', 200), b.claim(keys, 'sweep-1', 200)]);
  expect([...wonA, ...wonB].map((h) => h.key).sort()).toEqual(keys);
  expect(await a.liveKeys('sweep-1')).toHaveLength(4);
  await a.release(...wonA);
  expect((await b.claim(keys, 'sweep-1', 200)).length).toBe(0);
  await sleep(250);
  // The next sweep claims again; a claim of the previous one is fenced once it expired.
  const next = await b.claim(['r1'], 'sweep-2', 60_000);
  expect(next).toHaveLength(1);
  const old = [...wonA, ...wonB].find((h) => h.key === 'r1')!;
  expect(await (wonA.includes(old) ? a : b).isCurrent(old)).toBe(false);
  expect(await b.isCurrent(next[0]!)).toBe(true);
  expect(await a.prune(0)).toBeGreaterThanOrEqual(3);
});

describe('When the database goes away in the middle of a term', () => {
  let own: RunningEngine | undefined;
  let dataDir: string;
  afterAll(async () => {
    await own?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('then renewing fails while it is away, and once it is back the holder keeps the key if its term still runs, and loses it to a replica that took it over if not', async () => {
    dataDir = tempDir('lease-outage');
    const port = await freePort();
    own = await startFerretdbAt(dataDir, port);
    const uri = own.uri;
    const clients = [new MongoClient(uri, { serverSelectionTimeoutMS: 1000 }), new MongoClient(uri, { serverSelectionTimeoutMS: 1000 })];
    try {
      await Promise.all(clients.map((c) => c.connect()));
      const [a, b] = clients.map((c) => new Leases(c.db('leases'), 'outage', 8000));
      await a!.ensureIndexes();
      const held = (await a!.acquire('k'))!;
      await own.stop();
      own = undefined;
      await expect(a!.renew(held)).rejects.toThrow();
      await expect(b!.acquire('k')).rejects.toThrow();
      own = await startFerretdbAt(dataDir, port);
      // Back within the term: still A's, renewed.
      expect(await b!.acquire('k').catch(async () => b!.acquire('k'))).toBeUndefined();
      expect(await a!.renew(held)).toBe(true);
      // A goes quiet through another outage longer than its term: B takes over once the database is back.
      await own.stop();
      own = undefined;
      await sleep(8100);
      own = await startFerretdbAt(dataDir, port);
      const taken = await b!.acquire('k').catch(async () => b!.acquire('k'));
      expect(taken?.gen).toBe(held.gen + 1);
      expect(await a!.renew(held)).toBe(false);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  }, 60_000);
});
