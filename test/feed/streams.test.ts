/**
 * Change-feed watchers under pressure (issues 20 and 22), against the real service over HTTP: Accept is
 * negotiated (q=0 gets no stream), one serialisation per change for all streams, the budget of unsent bytes
 * (streams whose client stopped reading are ended, a reading one gets every change), and watchers when the
 * service begins to stop (long polls answer at once, streams end, new streams are refused).
 * The process-wide heap figures, with the heap cap of `npm start`, are in test/reliability/hostile-readers.
 */
import net from 'node:net';
import { bigMetadata, entry } from '../support/entries';
import { openSse, type SseEvent } from '../support/feed';
import { call, startTestService, type TestService } from '../support/service';

const services: TestService[] = [];
afterAll(async () => {
  await Promise.all(services.map((s) => s.close()));
});

async function start(env: Record<string, string> = {}): Promise<TestService> {
  const svc = await startTestService(env);
  services.push(svc);
  return svc;
}

async function create(svc: TestService, overrides: Record<string, unknown> = {}): Promise<{ id: string; revision: number }> {
  const r = await call(svc.url, 'POST', '/container_registry', entry(overrides));
  expect(r.status).toBe(201);
  return { id: r.body.container_registry_id, revision: r.body.revision };
}

async function setMetadata(svc: TestService, id: string, metadata: unknown): Promise<number> {
  const r = await call(svc.url, 'PUT', `/container_registry/${id}`, { $set: { container_registry_metadata: metadata } });
  expect(r.status).toBe(200);
  return r.body.revision as number;
}

/** The revision once the view holds every write this instance acknowledged. */
async function settled(svc: TestService): Promise<number> {
  expect(await svc.parts.feed.waitFor(svc.parts.feed.acked, 3000)).toBe(true);
  return svc.parts.feed.view.revision;
}

/** Fails with `what` instead of hanging when `p` does not settle within `ms` (a bound for failing, not a measurement). */
function within<T>(p: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

/** An SSE client that sends its request and never reads: its socket is paused from the start. */
function nonReader(url: string, path: string): { socket: net.Socket; readAll: () => Promise<{ bytes: number; ended: boolean }> } {
  const u = new URL(url);
  const socket = net.connect(Number(u.port), u.hostname);
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${u.host}\r\nAccept: text/event-stream\r\n\r\n`);
  socket.pause();
  return {
    socket,
    // Reads what the kernel kept for it; `ended`: the service closed the stream (a live one never ends).
    readAll: () =>
      new Promise((resolve) => {
        let bytes = 0;
        const timer = setTimeout(() => {
          socket.destroy();
          resolve({ bytes, ended: false });
        }, 10_000);
        socket.on('data', (c: Buffer) => (bytes += c.length));
        socket.once('close', () => {
          clearTimeout(timer);
          resolve({ bytes, ended: true });
        });
        socket.on('error', () => undefined);
        socket.resume();
      }),
  };
}

async function metric(svc: TestService, name: string): Promise<number> {
  const text = (await call(svc.url, 'GET', '/metrics')).text;
  return text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

describe('Accept', () => {
  test('When Accept says text/event-stream;q=0, then the answer is a JSON page, not a stream; when it prefers the stream, then a stream', async () => {
    const svc = await start();
    const refused = await fetch(`${svc.url}/container_registries/changes?since=0`, { headers: { Accept: 'text/event-stream;q=0' } });
    expect(refused.status).toBe(200);
    expect(refused.headers.get('content-type')).toContain('application/json');
    expect(await refused.json()).toMatchObject({ changes: [] });

    const s = await openSse(`${svc.url}/container_registries/changes?since=0`, { Accept: 'application/json;q=0.5, text/event-stream' });
    try {
      expect(s.headers.get('content-type')).toContain('text/event-stream');
      await s.until((e) => e.event === 'bookmark');
    } finally {
      s.abort();
    }
  });
});

describe('many watchers', () => {
  test('When 20 watchers stream the same changes, then each change is serialised once for all of them', async () => {
    const svc = await start();
    const from = await settled(svc);
    const watchers = await Promise.all(Array.from({ length: 20 }, () => openSse(`${svc.url}/container_registries/changes?since=${from}`)));
    try {
      await Promise.all(watchers.map((w) => w.until((e) => e.event === 'bookmark')));
      const before = svc.parts.streams.frames.serialised;
      const { id } = await create(svc);
      const revisions = [await settled(svc)];
      for (let i = 0; i < 4; i++) revisions.push(await setMetadata(svc, id, { round: i }));
      const last = String(revisions[revisions.length - 1]);
      await Promise.all(watchers.map((w) => w.until((e) => e.id === last && e.event === 'upsert')));
      for (const w of watchers) expect(w.events.filter((e) => e.event === 'upsert').map((e) => Number(e.id))).toEqual(revisions);
      expect(svc.parts.streams.frames.serialised - before).toBe(revisions.length);
    } finally {
      for (const w of watchers) w.abort();
    }
  });

  test('When streams stop reading while a large entry changes, then they are ended and a watcher that reads gets every change', async () => {
    // A budget of 2 MiB: 4 streams share it, 512 KiB each (one alone may hold 2 MiB); every change is a
    // frame of about 200 KB. The reading client runs in this process, so it reads only between the service's turns.
    const svc = await start({ FEED_STREAM_BUDGET_BYTES: String(2 * 1024 * 1024) });
    const { id } = await create(svc, { container_registry_metadata: bigMetadata(200_000, 'v0') });
    const from = await settled(svc);
    const path = `/container_registries/changes?since=${from}`;
    const stuck = [nonReader(svc.url, path), nonReader(svc.url, path), nonReader(svc.url, path)];
    const reader = await openSse(`${svc.url}${path}`);
    await reader.until((e) => e.event === 'bookmark');
    await new Promise((r) => setTimeout(r, 200)); // the non-readers' requests are in

    // 60 changes of ~200 KB: 12 MB per stream, more than the kernel's socket buffers hold for a client that does not read.
    const revisions: number[] = [];
    for (let i = 1; i <= 60; i++) revisions.push(await setMetadata(svc, id, bigMetadata(200_000, `v${i}`)));
    const last = String(revisions[revisions.length - 1]);
    await within(reader.until((e) => e.id === last && e.event === 'upsert', 30_000), 'the last change on the reading stream', 30_000);
    const upserts = (evs: SseEvent[]) => evs.filter((e) => e.event === 'upsert').map((e) => Number(e.id));
    expect(upserts(reader.events)).toEqual(revisions);
    reader.abort();

    const ended = await metric(svc, 'registry_db_feed_streams_ended_total');
    const got = await Promise.all(stuck.map((s) => s.readAll()));
    process.stderr.write(`[streams] ended by the budget: ${ended}; bytes the non-readers could still read: ${got.map((g) => g.bytes).join(', ')}\n`);
    expect(ended).toBe(3);
    // Each was ended: it ends once read, short of the 12 MB it would have had.
    for (const g of got) {
      expect(g.ended).toBe(true);
      expect(g.bytes).toBeLessThan(60 * 200_000);
    }
  });
});

describe('one watcher that stops reading', () => {
  test('When a lone stream stops reading while a large entry changes, then it is ended at its own cap (stream_limit) long before the process-wide budget, and its client can resume', async () => {
    // The default budget (64 MiB) is never reached here: only the cap of one stream (4 MiB) can end it.
    const svc = await start();
    const { id } = await create(svc, { container_registry_metadata: bigMetadata(200_000, 'v0') });
    const from = await settled(svc);
    // The counters are the process's (earlier tests' services ran in it too): compared before and after.
    const ended = async () => {
      const text = (await call(svc.url, 'GET', '/metrics')).text;
      const byReason = (reason: string) => Number(new RegExp(`^registry_db_feed_streams_ended_total\\{reason="${reason}"\\} (\\S+)`, 'm').exec(text)?.[1] ?? 0);
      return { stream_limit: byReason('stream_limit'), budget: byReason('budget') };
    };
    const before = await ended();
    const stuck = nonReader(svc.url, `/container_registries/changes?since=${from}`);
    await new Promise((r) => setTimeout(r, 200)); // its request is in
    // 80 changes of ~200 KB: 16 MB, more than the kernel's socket buffers and the 4 MiB cap together.
    for (let i = 1; i <= 80; i++) await setMetadata(svc, id, bigMetadata(200_000, `v${i}`));
    await settled(svc);
    expect(await ended()).toEqual({ stream_limit: before.stream_limit + 1, budget: before.budget });
    const got = await stuck.readAll();
    expect(got.ended).toBe(true);
    expect(got.bytes).toBeLessThan(80 * 200_000);
  });
});

describe('when the service begins to stop', () => {
  test('When a long poll waits and a stream is open as the stop begins, then the long poll answers at once, the stream ends, a new long poll answers at once and a new stream is refused with 503', async () => {
    const svc = await start();
    const from = await settled(svc);
    const poll = call(svc.url, 'GET', `/container_registries/changes?since=${from}&wait=30`);
    const s = await openSse(`${svc.url}/container_registries/changes?since=${from}`);
    await s.until((e) => e.event === 'bookmark');
    await new Promise((r) => setTimeout(r, 200)); // the long poll is waiting

    svc.parts.lifecycle.beginStop();
    const answered = await within(poll, 'the waiting long poll');
    expect(answered.status).toBe(200);
    expect(answered.body).toEqual({ revision: from, changes: [], epoch: svc.parts.feed.epoch });
    await within(s.ended, 'the end of the stream');

    const late = await within(call(svc.url, 'GET', `/container_registries/changes?since=${from}&wait=30`), 'a long poll sent after the stop began');
    expect(late.status).toBe(200);
    const refused = await call(svc.url, 'GET', `/container_registries/changes?since=${from}`, undefined, { Accept: 'text/event-stream' });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('content-type')).toContain('application/problem+json');
  });
});
