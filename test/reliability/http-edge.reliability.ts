/**
 * The HTTP edge against hostile clients (issue 24 items 2, 3, 6 and 8), on the real service process over
 * loopback: request bodies trickled a byte at a time cannot take the connections /healthz needs and are cut at
 * their deadline with nothing stored, while long polls and event streams (complete requests) are never cut;
 * a forged X-Forwarded-For cannot dodge the failed-authentication budget with a hop count; bodies are never
 * stored altered (bytes that are not UTF-8, integers beyond 2^53, other charsets); an entry over the
 * database's 16 MiB document limit is a 413 before the database sees it.
 */
import { connect, type Socket } from 'node:net';
import { BSON } from 'mongodb';
import { bearer, makeKeys } from '../security/keys';
import { entry } from '../support/entries';
import { openSse } from '../support/feed';
import { eventually, send, sleep, startServiceProcess, type ServiceProcess } from './support';

const procs: ServiceProcess[] = [];
afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop()));
});

async function start(env: Record<string, string>): Promise<ServiceProcess> {
  const uri = process.env.TEST_MONGODB_URI;
  if (!uri) throw new Error('TEST_MONGODB_URI is not set');
  const p = await startServiceProcess({ MONGODB_URI: uri, ...env });
  procs.push(p);
  return p;
}

/** A raw client connection: what the server answered so far, and whether it has closed. */
interface Raw {
  socket: Socket;
  received(): string;
  closed: Promise<void>;
  isClosed(): boolean;
  /** Writes if the connection is still open; false when it was closed. */
  write(text: string | Buffer): boolean;
}

function rawConnection(port: number): Promise<Raw> {
  return new Promise((resolve) => {
    let text = '';
    let isClosed = false;
    const socket = connect(port, '127.0.0.1');
    const closed = new Promise<void>((done) => socket.once('close', () => ((isClosed = true), done())));
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    socket.on('error', () => undefined);
    const raw: Raw = {
      socket,
      received: () => text,
      closed,
      isClosed: () => isClosed,
      write: (t) => !isClosed && !socket.destroyed && socket.write(t),
    };
    socket.once('connect', () => resolve(raw));
    socket.once('error', () => resolve(raw));
  });
}

/** The head of a chunked POST of a new entry. */
const chunkedHead = (port: number) =>
  `POST /container_registry HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`;
const chunk = (s: string) => `${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n`;

async function names(s: ServiceProcess, prefix: string): Promise<string[]> {
  const res = await send(s.url, 'POST', '/container_registries', { container_registry_name: { $regex: `^${prefix}` } });
  expect(res.status).toBe(200);
  return (res.body as Array<{ container_registry_name: string }>).map((e) => e.container_registry_name);
}

describe('connections: slow bodies, long polls, keep-alive', () => {
  const BODY_MS = 2000;
  const IDLE_MS = 8000;
  let s: ServiceProcess;
  let port: number;
  beforeAll(async () => {
    s = await start({
      HTTP_MAX_CONNECTIONS: '20',
      HTTP_BODY_TIMEOUT_MS: String(BODY_MS),
      HTTP_CONNECTION_IDLE_TIMEOUT_MS: String(IDLE_MS),
      HTTP_KEEP_ALIVE_TIMEOUT_MS: '60000',
    });
    port = Number(new URL(s.url).port);
  });

  test('When 25 clients trickle request bodies a byte a second against a cap of 20 connections, then /healthz answers throughout, every trickled body is cut by its deadline (408 or close) and nothing is stored', async () => {
    const prefix = `trickle-${Date.now()}-`;
    const clients: Raw[] = [];
    for (let i = 0; i < 25; i++) {
      const c = await rawConnection(port);
      c.write(chunkedHead(port));
      clients.push(c);
    }
    const bodies = clients.map((_, i) => JSON.stringify(entry({ container_registry_name: `${prefix}${i}` })));
    let sent = 0;
    const trickle = setInterval(() => {
      clients.forEach((c, i) => c.write(chunk(bodies[i]![sent] ?? ' ')));
      sent++;
    }, 1000);
    try {
      const answers: number[] = [];
      for (let i = 0; i < 10; i++) {
        answers.push((await send(s.url, 'GET', '/healthz', undefined, {}, 3000)).status);
        await sleep(150);
      }
      expect(answers).toEqual(Array(10).fill(200));
      // Every trickling connection ends within the body deadline (plus the timers' slack), none with a body in.
      expect(await eventually(async () => clients.every((c) => c.isClosed()), BODY_MS + 8000)).toBe(true);
    } finally {
      clearInterval(trickle);
    }
    const answered = clients.map((c) => c.received()).filter((r) => r !== '');
    for (const r of answered) {
      expect(r).toMatch(/^HTTP\/1\.1 408 /);
      expect(r).toMatch(/content-type: application\/problem\+json/i);
      expect(r).toMatch(/not complete 2000 ms after its head/);
    }
    expect(await names(s, prefix)).toEqual([]);
    expect(s.running()).toBe(true);
  }, 60_000);

  test('When a body arrives but for its last byte and the rest comes after the deadline, then the client gets a 408 problem, the connection is closed and the entry is not stored', async () => {
    const name = `late-${Date.now()}`;
    const body = JSON.stringify(entry({ container_registry_name: name }));
    const c = await rawConnection(port);
    c.write(chunkedHead(port) + chunk(body.slice(0, -1)));
    expect(await eventually(async () => c.isClosed(), BODY_MS + 5000, 100)).toBe(true);
    expect(c.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(c.received()).toMatch(/connection: close/i);
    expect(c.write(chunk(body.slice(-1)) + '0\r\n\r\n')).toBe(false);
    expect(await names(s, name)).toEqual([]);
    // A body sent at once is served as before.
    expect((await send(s.url, 'POST', '/container_registry', entry({ container_registry_name: `${name}-whole` }))).status).toBe(201);
  }, 30_000);

  test('When a long poll and an event stream outlast the body and idle deadlines while silent sockets flood in, then neither is cut', async () => {
    const start = await send(s.url, 'GET', '/container_registries/changes?limit=1');
    const revision = Number(start.body.revision);
    const sse = await openSse(`${s.url}/container_registries/changes?since=${revision}`);
    expect(sse.status).toBe(200);
    const poll = send(s.url, 'GET', `/container_registries/changes?since=${revision}&wait=60`, undefined, {}, 40_000);
    const flood = await Promise.all(Array.from({ length: 15 }, () => rawConnection(port)));
    await sleep(IDLE_MS + 1000);
    const created = await send(s.url, 'POST', '/container_registry', entry());
    expect(created.status).toBe(201);
    const answer = await poll;
    expect(answer.status).toBe(200);
    expect(answer.body.changes.map((ch: { container_registry_id: string }) => ch.container_registry_id)).toEqual([created.body.container_registry_id]);
    const ev = await sse.until((e) => e.data.includes(created.body.container_registry_id as string), 10_000);
    expect(ev.event).toBe('upsert');
    sse.abort();
    for (const f of flood) f.socket.destroy();
  }, 60_000);

  test('When a keep-alive connection idles between requests and newer silent connections fill the waiting half, then the idle one is closed first', async () => {
    const c = await rawConnection(port);
    c.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    expect(await eventually(async () => /\r\n\r\n/.test(c.received()), 5000, 20)).toBe(true);
    expect(c.received()).toMatch(/^HTTP\/1\.1 200 /);
    // Ten newer silent connections: with the idle keep-alive one that makes 11 waiting, over the half of 20.
    const flood = await Promise.all(Array.from({ length: 10 }, () => rawConnection(port)));
    // Closed by the flood, not by a timer: the idle timeout is 8 s and keep-alive 60 s.
    expect(await eventually(async () => c.isClosed(), 4000, 20)).toBe(true);
    expect(flood.every((f) => !f.isClosed())).toBe(true);
    for (const f of flood) f.socket.destroy();
  }, 30_000);
});

describe('TRUST_PROXY as a hop count', () => {
  test('When 30 wrong keys come through one proxy, each with a fresh forged X-Forwarded-For ahead of the address the proxy appended, then they are throttled (429) as without the header', async () => {
    const keys = makeKeys();
    const s = await start({ API_KEYS: keys.env, TRUST_PROXY: '1', AUTH_FAILURE_LIMIT: '5', RATE_LIMIT_WINDOW_MS: '86400000' });
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      const headers = { ...bearer(keys.wrong), 'X-Forwarded-For': `203.0.113.${i + 1}, 198.51.100.7` };
      statuses.push((await send(s.url, 'POST', '/container_registries', {}, headers)).status);
    }
    expect(statuses).toEqual([...Array(5).fill(401), ...Array(25).fill(429)]);
    // Another client behind the same proxy has a budget of its own.
    expect((await send(s.url, 'POST', '/container_registries', {}, { ...bearer(keys.wrong), 'X-Forwarded-For': '198.51.100.8' })).status).toBe(401);
    expect((await send(s.url, 'POST', '/container_registries', {}, bearer(keys.reader))).status).toBe(200);
    await s.stop();
  }, 60_000);
});

describe('request bodies are stored as sent or refused', () => {
  let s: ServiceProcess;
  beforeAll(async () => {
    s = await start({ BODY_LIMIT_BYTES: String(8 * 1024 * 1024) });
  });

  /** POST of raw bytes. */
  async function post(path: string, body: Buffer | string, contentType = 'application/json'): Promise<{ status: number; type: string; body: any }> {
    const res = await fetch(s.url + path, { method: 'POST', headers: { 'Content-Type': contentType }, body });
    const text = await res.text();
    return { status: res.status, type: res.headers.get('content-type') ?? '', body: text ? JSON.parse(text) : undefined };
  }

  test('When a body holds bytes that are not UTF-8, then it is a 400 naming the field, and nothing is stored', async () => {
    const name = `utf8-${Date.now()}`;
    const text = JSON.stringify(entry({ container_registry_name: `${name}-XX`, container_registry_metadata: { owner: 'tests' } }));
    const bytes = Buffer.from(text, 'utf8');
    const at = bytes.indexOf('XX');
    bytes[at] = 0xff;
    bytes[at + 1] = 0xfe;
    const res = await post('/container_registry', bytes);
    expect(res.status).toBe(400);
    expect(res.type).toMatch(/application\/problem\+json/);
    expect(res.body.detail).toMatch(/not valid UTF-8/);
    expect(res.body.errors).toEqual([{ path: '/container_registry_name', message: expect.stringMatching(/not UTF-8/) }]);
    expect(await names(s, name)).toEqual([]);
    // U+FFFD spelled as UTF-8 is a character like any other.
    expect((await post('/container_registry', JSON.stringify(entry({ container_registry_name: `${name}-\uFFFD` })))).status).toBe(201);
  });

  test('When a body holds an integer beyond 2^53 - 1, then it is a 400 naming its field (create and update), and nothing is stored; 2^53 - 1 itself is kept exactly', async () => {
    const name = `bigint-${Date.now()}`;
    const created = await post('/container_registry', `{"container_registry_name":"${name}","container_registry_public_url":"http://127.0.0.1:5999","container_registry_metadata":{"n":9007199254740993}}`);
    expect(created.status).toBe(400);
    expect(created.body.errors).toEqual([{ path: '/container_registry_metadata/n', message: expect.stringMatching(/9007199254740991/) }]);
    expect(await names(s, name)).toEqual([]);

    const ok = await post('/container_registry', `{"container_registry_name":"${name}","container_registry_public_url":"http://127.0.0.1:5999","container_registry_metadata":{"n":9007199254740991,"m":-9007199254740991,"x":1e300,"y":12345678901234567.5}}`);
    expect(ok.status).toBe(201);
    const id = ok.body.container_registry_id as string;
    const update = await fetch(`${s.url}/container_registry/${id}`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json' },
      body: '{"$set":{"container_registry_metadata.n":-9007199254740993}}',
    });
    expect(update.status).toBe(400);
    expect(((await update.json()) as { errors: unknown }).errors).toEqual([{ path: '/$set/container_registry_metadata.n', message: expect.any(String) }]);
    const stored = await fetch(`${s.url}/container_registry/${id}`);
    expect(await stored.text()).toMatch(/"n":9007199254740991,"m":-9007199254740991/);
  });

  test('When a body is labelled with a charset other than UTF-8, then it is a 415; utf-8 labels are served', async () => {
    const body = JSON.stringify(entry());
    const utf16 = await post('/container_registry', Buffer.from(body, 'utf16le'), 'application/json; charset=utf-16');
    expect(utf16.status).toBe(415);
    expect(utf16.body.detail).toMatch(/charset=utf-16/);
    expect((await post('/container_registry', body, 'application/json; charset=ISO-8859-1')).status).toBe(415);
    expect((await post('/container_registry', body, 'application/json; charset="UTF-8"')).status).toBe(201);
    expect((await post('/container_registry', JSON.stringify(entry()), 'application/json;charset=us-ascii')).status).toBe(201);
  });

  /** A valid entry whose config holds `arrays` arrays of 64 zeros: about 510 bytes of BSON for 134 of JSON each. */
  function bulky(arrays: number, name: string): Record<string, unknown> {
    const config: Record<string, Record<string, Record<string, number[]>>> = {};
    for (let n = 0; n < arrays; n++) {
      const [a, b, c] = [Math.floor(n / 4096), Math.floor(n / 64) % 64, n % 64];
      (((config[`k${a}`] ??= {})[`k${b}`] ??= {})[`k${c}`] = Array(64).fill(0));
    }
    return entry({ container_registry_name: name, container_registry_config: config });
  }

  test('When an entry valid against the schema is over the 16 MiB document limit (create, or an update that grows it), then it is a 413 naming the field before the database sees it; a large one under it is stored', async () => {
    const name = `huge-${Date.now()}`;
    const huge = bulky(36_864, name);
    expect(BSON.calculateObjectSize(huge)).toBeGreaterThan(16 * 1024 * 1024);
    const created = await post('/container_registry', JSON.stringify(huge));
    expect(created.status).toBe(413);
    expect(created.type).toMatch(/application\/problem\+json/);
    expect(created.body.errors).toEqual([{ path: '/container_registry_config', message: expect.stringMatching(/at most 16711680/) }]);
    expect(await names(s, name)).toEqual([]);

    const small = await post('/container_registry', JSON.stringify(entry({ container_registry_name: name })));
    expect(small.status).toBe(201);
    const id = small.body.container_registry_id as string;
    const grown = await fetch(`${s.url}/container_registry/${id}`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ $set: { container_registry_config: huge.container_registry_config } }),
    });
    expect(grown.status).toBe(413);
    expect((await send(s.url, 'GET', `/container_registry/${id}`)).body.version).toBe(1);

    // A large entry under the limit is stored as before (2,000 arrays: about 1 MB of BSON; one of 16 MB takes
    // FerretDB v1 about a minute to write and another to read, too slow for a test).
    const big = bulky(2000, `${name}-big`);
    expect(BSON.calculateObjectSize(big)).toBeGreaterThan(1_000_000);
    const stored = await post('/container_registry', JSON.stringify(big));
    expect(stored.status).toBe(201);
    const back = await send(s.url, 'GET', `/container_registry/${stored.body.container_registry_id}`, undefined, {}, 60_000);
    expect(back.status).toBe(200);
    expect(back.body.container_registry_config).toEqual(big.container_registry_config);
    expect(s.running()).toBe(true);
  }, 120_000);
});
