/**
 * A reader's `$regex` never freezes the process (issue 24 item 1), against the built service as a process on
 * loopback: the patterns that backtrack exponentially in a backtracking engine, and patterns generated from a
 * grammar (fast-check), sent as query filters (served from the in-memory view) and as change-feed filters (a
 * JSON page, a long poll, a Server-Sent Events stream), are each refused at once (400 naming the pattern) or
 * answered, while a loop of GET /healthz keeps being answered. Then, with data on which matching is slow
 * (linear, but with a large constant), a query that outlasts QUERY_TIMEOUT_MS and a feed page with an entry that
 * cannot be evaluated within a slice are 503s naming their limit, and /healthz is still answered meanwhile.
 * The latency bound is generous (seconds): a frozen event loop blows it by far (54 s before the fix).
 */
import fc from 'fast-check';
import { entry } from '../support/entries';
import { openSse } from '../support/feed';
import { send, sleep, startServiceProcess, type Outcome, type ServiceProcess } from './support';

jest.setTimeout(300_000);

/** Far above any answer of a live event loop on a loaded machine, far below a frozen one. */
const HEALTHZ_BOUND_MS = 3000;
const HOSTILE = ['(a|a)*!', '(.|.)*!', '(\\w|\\d)*!', '.*.*.*.*.*.*.*.*!', '(a|aa|aaa|aaaa)*!', '(a+)+$', '^(\\w+\\s?)*$', '(x+x+)+y', '^(([a-z])+.)+[A-Z]([a-z])+$'];
const FIELDS = ['container_registry_name', 'container_registry_metadata.s', 'container_registry_metadata.list', 'container_registry_public_url'];

/**
 * GET /healthz in a loop until stopped; the slowest answer (a request that fails counts as infinitely slow). The
 * figures (p50, p99, max) are printed with `label`: the 100 ms asked of /healthz while regexes run is a
 * benchmark figure on this shared machine, the test's bound is a frozen event loop's.
 */
function healthzLoop(base: string, label: string): { stop(): Promise<{ max: number; count: number }> } {
  let running = true;
  const times: number[] = [];
  const loop = (async () => {
    while (running) {
      const r = await send(base, 'GET', '/healthz', undefined, {}, 30_000);
      times.push(r.status === 200 ? r.endedAt - r.startedAt : Infinity);
      await sleep(20);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      const sorted = [...times].sort((a, b) => a - b);
      const at = (q: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
      process.stderr.write(`[regex] ${label}: /healthz over ${sorted.length} requests: p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms\n`);
      return { max: sorted.at(-1) ?? 0, count: sorted.length };
    },
  };
}

/** A 400 problem naming a $regex, or an answer (a query's rows, a feed page); anything else fails, saying what. */
function expectRefusedOrAnswered(r: Outcome, what: string): void {
  const refused = r.status === 400 && r.contentType.includes('application/problem+json') && r.body.errors.some((e: { path: string }) => /\$regex$/.test(e.path));
  const answered = r.status === 200 && (Array.isArray(r.body) || Array.isArray(r.body?.changes));
  if (!refused && !answered) throw new Error(`${what}: ${r.status} ${r.error ?? ''} ${String(JSON.stringify(r.body)).slice(0, 300)}`);
}

/** The catalog's current revision (a feed page without a filter that holds every change). */
const head = async (svc: ServiceProcess): Promise<number> => Number((await send(svc.url, 'GET', '/container_registries/changes?since=0&limit=5000')).body.revision);
const changesPath = (filter: unknown, extra = '') => `/container_registries/changes?filter=${encodeURIComponent(JSON.stringify(filter))}${extra}`;

describe('hostile and generated patterns, default settings', () => {
  let svc: ServiceProcess;
  beforeAll(async () => {
    svc = await startServiceProcess({ MONGODB_URI: process.env.TEST_MONGODB_URI! });
    // Strings the patterns above backtrack on: runs of a, of word characters, of x; long and short.
    const strings = ['a'.repeat(29), 'a'.repeat(400), 'x'.repeat(400), 'ab1 '.repeat(100), 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa b', 'Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'];
    for (let i = 0; i < 30; i++) {
      const s = strings[i % strings.length]!;
      const r = await send(svc.url, 'POST', '/container_registry', entry({ container_registry_name: `${'a'.repeat(29)}${i}`, container_registry_metadata: { s, list: [s, 'b'] } }));
      expect(r.status).toBe(201);
    }
  });
  afterAll(() => svc?.stop(5000));

  test('When hostile patterns are queried (view) and used as feed filters (page and long poll), then each is answered at once and /healthz keeps answering', async () => {
    const health = healthzLoop(svc.url, 'hostile patterns (queries, feed pages, long polls)');
    for (const pattern of HOSTILE) {
      for (const field of FIELDS) {
        for (const options of ['', 'i', 'ix', 'm', 's']) {
          const filter = { [field]: { $regex: pattern, ...(options ? { $options: options } : {}) } };
          expectRefusedOrAnswered(await send(svc.url, 'POST', '/container_registries?limit=50', filter), `query ${JSON.stringify(filter)}`);
        }
      }
      const filter = { container_registry_name: { $regex: pattern } };
      expectRefusedOrAnswered(await send(svc.url, 'GET', changesPath(filter, '&since=0')), `feed ${pattern}`);
      const at = await head(svc);
      const poll = send(svc.url, 'GET', changesPath(filter, `&since=${at}&wait=2`));
      await send(svc.url, 'POST', '/container_registry', entry({ container_registry_name: `${'a'.repeat(29)}-${pattern.length}-${Math.random().toString(36).slice(2, 8)}` }));
      expectRefusedOrAnswered(await poll, `long poll ${pattern}`);
    }
    const { max, count } = await health.stop();
    expect(count).toBeGreaterThan(10);
    expect(max).toBeLessThan(HEALTHZ_BOUND_MS);
  });

  test('When an SSE stream has a hostile filter, then it delivers the matching entries written meanwhile and /healthz keeps answering', async () => {
    const health = healthzLoop(svc.url, 'hostile SSE filter');
    const stream = await openSse(`${svc.url}${changesPath({ container_registry_metadata: { $exists: true }, 'container_registry_metadata.s': { $regex: '^(a|a)*$' } }, '&since=0')}`);
    expect(stream.status).toBe(200);
    const name = `sse-${Math.random().toString(36).slice(2, 8)}`;
    const r = await send(svc.url, 'POST', '/container_registry', entry({ container_registry_name: name, container_registry_metadata: { s: 'a'.repeat(40) } }));
    expect(r.status).toBe(201);
    await stream.until((e) => e.event === 'upsert' && JSON.parse(e.data).container_registry_id === r.body.container_registry_id, 20_000);
    stream.abort();
    const { max } = await health.stop();
    expect(max).toBeLessThan(HEALTHZ_BOUND_MS);
  });

  test('When patterns generated from a grammar are queried and used as feed filters, then each is refused naming the pattern or answered, and /healthz keeps answering', async () => {
    const { pattern } = fc.letrec<{ pattern: string; term: string }>((tie) => ({
      term: fc.oneof(
        { depthSize: 'small' },
        fc.constantFrom('a', 'aa', 'x', '.', '\\w', '\\d', '\\s', '[a-z]', '[^!]', '\\1', '(?=a)', '(?<!a)', '\\pL', '\\b'),
        fc.tuple(tie('term'), fc.constantFrom('*', '+', '?', '{2,}', '{1,40}', '*+', '{300}')).map(([t, q]) => `(${t})${q}`),
        fc.array(tie('term'), { minLength: 2, maxLength: 4 }).map((xs) => `(${xs.join('|')})`),
        fc.array(tie('term'), { minLength: 2, maxLength: 3 }).map((xs) => xs.join('')),
      ),
      pattern: fc.tuple(fc.constantFrom('', '^'), tie('term'), fc.constantFrom('', '$', '!', 'y$')).map(([a, t, z]) => a + t + z),
    }));
    const health = healthzLoop(svc.url, 'generated patterns');
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(pattern, fc.constantFrom(...FIELDS), async (p, field) => {
        const filter = { [field]: { $regex: p } };
        const q = await send(svc.url, 'POST', '/container_registries', filter);
        expectRefusedOrAnswered(q, `query ${JSON.stringify(filter)}`);
        if (q.status === 400) refused++;
        expectRefusedOrAnswered(await send(svc.url, 'GET', changesPath(filter, '&since=0')), `feed ${JSON.stringify(filter)}`);
      }),
      { numRuns: 60, seed: 24 },
    );
    const { max } = await health.stop();
    expect(max).toBeLessThan(HEALTHZ_BOUND_MS);
    expect(refused).toBeGreaterThan(0); // the grammar reaches backreferences, lookaround and oversized programs
    expect(refused).toBeLessThan(60);
  });
});

describe('data on which matching is slow, QUERY_TIMEOUT_MS=1000', () => {
  let svc: ServiceProcess;
  let bigRevision: number;
  /** 1,200 characters on which RE2 is slow for a.{60}b (see test/view/budget.test.ts): about 20 ms each. */
  const slowText = (i: number) => {
    let x = 777 + i;
    const random = () => (x = (x * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    return `b${Array.from({ length: 1200 }, () => (random() < 0.5 ? 'a' : 'c')).join('')}`;
  };
  beforeAll(async () => {
    svc = await startServiceProcess({ MONGODB_URI: process.env.TEST_MONGODB_URI!, QUERY_TIMEOUT_MS: '1000' });
    for (let i = 0; i < 300; i++) {
      const r = await send(svc.url, 'POST', '/container_registry', entry({ container_registry_metadata: { text: slowText(i) } }));
      expect(r.status).toBe(201);
    }
    const big = await send(svc.url, 'POST', '/container_registry', entry({ container_registry_metadata: { list: Array.from({ length: 64 }, (_, k) => slowText(1000 + k)) } }));
    expect(big.status).toBe(201);
    bigRevision = big.body.revision;
  });
  afterAll(() => svc?.stop(5000));

  test('When a query outlasts the budget, then it is a 503 naming QUERY_TIMEOUT_MS with Retry-After, and /healthz keeps answering', async () => {
    const health = healthzLoop(svc.url, 'queries over the budget');
    const r = await send(svc.url, 'POST', '/container_registries', { 'container_registry_metadata.text': { $regex: 'a.{60}b' } });
    const { max, count } = await health.stop();
    expect({ status: r.status, limit: r.body.limit, retryAfter: r.retryAfter }).toEqual({ status: 503, limit: 'QUERY_TIMEOUT_MS', retryAfter: expect.stringMatching(/^\d+$/) });
    expect(r.contentType).toContain('application/problem+json');
    expect(r.body.detail).toContain('QUERY_TIMEOUT_MS');
    expect(count).toBeGreaterThan(3);
    expect(max).toBeLessThan(HEALTHZ_BOUND_MS);
  });

  test('When a feed filter cannot be evaluated on one entry within a slice, then the page and the long poll are 503s naming the limit', async () => {
    // Eight patterns over 64 slow strings; each use has patterns of its own, so that none finds RE2's work cached.
    const slowest = (from: number) => ({ $and: Array.from({ length: 8 }, (_, k) => ({ 'container_registry_metadata.list': { $regex: `a.{${from - k}}b` } })) });
    const health = healthzLoop(svc.url, 'feed filter over a slice');
    // A page that reaches it after other entries ends before it (200, its revision says where to go on)...
    const before = await send(svc.url, 'GET', changesPath(slowest(59), '&since=0&limit=5000'));
    expect(before.status).toBe(200);
    expect(before.body.revision).toBeLessThan(bigRevision);
    // ...and the page that starts with it cannot be answered.
    const page = await send(svc.url, 'GET', changesPath(slowest(51), `&since=${bigRevision - 1}&limit=5000`));
    const { max } = await health.stop();
    expect({ status: page.status, limit: page.body.limit, retryAfter: page.retryAfter }).toEqual({ status: 503, limit: 'filter evaluation per entry (ms)', retryAfter: expect.stringMatching(/^\d+$/) });
    // A long poll that meets such an entry while it waits: a 503 too, not a page that never comes.
    const at = await head(svc);
    const waiting = send(svc.url, 'GET', changesPath(slowest(43), `&since=${at}&wait=5`));
    await sleep(300);
    const other = await send(svc.url, 'POST', '/container_registry', entry({ container_registry_metadata: { list: Array.from({ length: 64 }, (_, k) => slowText(2000 + k)) } }));
    expect(other.status).toBe(201);
    const poll = await waiting;
    expect({ status: poll.status, limit: poll.body.limit }).toEqual({ status: 503, limit: 'filter evaluation per entry (ms)' });
    expect(max).toBeLessThan(HEALTHZ_BOUND_MS);
    // A page that ends early at its slice says where to continue; following the pages reaches the end.
    let since = 0;
    let pages = 0;
    const end = await head(svc);
    while (since < end) {
      const p = await send(svc.url, 'GET', changesPath({ 'container_registry_metadata.text': { $regex: 'a.{60}b' } }, `&since=${since}&limit=5000`));
      expect(p.status).toBe(200); // the big entry has no text: this filter does not look at its list
      expect(p.body.revision).toBeGreaterThan(since);
      since = p.body.revision;
      pages++;
    }
    expect(since).toBe(end);
    expect(pages).toBeGreaterThan(1);
  });
});
