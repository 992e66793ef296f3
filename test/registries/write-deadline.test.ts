/**
 * A write's deadline runs from when the request arrives, its wait for a turn at the entry included: writes
 * of one entry queued behind one the database does not answer (FerretDB frozen with SIGSTOP, on a server of
 * this test's own) are answered 503 problem+json "try again" at their deadline rather than left waiting, and
 * none of them lands afterwards (a client told "try again" must not find its write applied later).
 */
import { rmSync } from 'node:fs';
import { entry } from '../support/entries';
import { startEngine, testEngine, type RunningEngine } from '../support/engines';
import { KeyedMutex } from '../../src/lib/keyed-mutex';
import { call, startTestService, type TestService } from '../support/service';
import { tempDir } from '../reliability/support';

let engine: RunningEngine;
let svc: TestService;
let dataDir: string;

beforeAll(async () => {
  dataDir = tempDir('write-deadline');
  engine = await startEngine(testEngine(), dataDir);
  svc = await startTestService({}, { uri: engine.uri });
});
afterAll(async () => {
  engine?.thaw();
  await svc?.close();
  await engine?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

interface Answer {
  tag: string;
  status: number;
  contentType: string;
  retryAfter: string | null;
  at: number;
}

async function addTag(path: string, tag: string): Promise<Answer> {
  const res = await fetch(svc.url + path, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ $addToSet: { container_registry_tags: tag } }),
    signal: AbortSignal.timeout(60_000),
  });
  await res.text();
  return { tag, status: res.status, contentType: res.headers.get('content-type') ?? '', retryAfter: res.headers.get('retry-after'), at: Date.now() };
}

test('When writes of one entry queue behind one the frozen database does not answer, then each queued write is answered 503 "try again" at its deadline, before the database is back, and none of them lands afterwards', async () => {
  const created = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_tags: [] }));
  expect(created.status).toBe(201);
  const path = `/container_registry/${created.body.container_registry_id}`;

  engine.freeze();
  const answers: Answer[] = [];
  const writes = ['first', 'second', 'third', 'fourth'].map((tag) => addTag(path, tag).then((a) => (answers.push(a), a)));
  // The write deadline is 8 s: the queued three are answered by then. Without a deadline on the queue they
  // wait for the database (20 s here).
  for (const until = Date.now() + 20_000; answers.length < 3 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 100));
  const thawedAt = Date.now();
  engine.thaw();
  const all = await Promise.all(writes);

  const beforeThaw = all.filter((a) => a.at < thawedAt);
  expect(beforeThaw.map((a) => ({ status: a.status, problem: a.contentType.startsWith('application/problem+json'), retryAfter: a.retryAfter !== null }))).toEqual(
    Array(3).fill({ status: 503, problem: true, retryAfter: true }),
  );
  // The entry holds exactly the writes answered 200 (the one that was waiting on the database, once it is back).
  const applied = all.filter((a) => a.status === 200).map((a) => a.tag);
  const stored = await call(svc.url, 'GET', path);
  expect(stored.status).toBe(200);
  expect({ tags: [...stored.body.container_registry_tags].sort(), version: stored.body.version }).toEqual({ tags: applied.sort(), version: 1 + applied.length });
});

test('When a caller queued for a key gives up, then the callers after it still wait for the work that runs: never two at once', async () => {
  const locks = new KeyedMutex();
  let running = 0;
  let most = 0;
  const work = (ms: number) => async () => {
    most = Math.max(most, ++running);
    await new Promise((r) => setTimeout(r, ms));
    running--;
    return ms;
  };
  const first = locks.run('k', work(300));
  const gaveUp = locks.run('k', work(10), { at: Date.now() + 50, error: () => new Error('gave up') });
  await expect(gaveUp).rejects.toThrow('gave up');
  // Queued after the one that gave up, and one arriving when nothing else is queued: both after `first`.
  const second = locks.run('k', work(10));
  expect(await Promise.all([first, second])).toEqual([300, 10]);
  expect(most).toBe(1);
  const third = locks.run('k', work(10));
  expect(await third).toBe(10);
  expect(most).toBe(1);
});
