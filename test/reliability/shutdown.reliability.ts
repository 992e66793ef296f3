/**
 * Shutdown under load: the built service as a process, 12 clients sending creates, reads and queries
 * (one TCP connection per request, so "refused" is unambiguous), SIGTERM in the middle, plus one request
 * whose body is still being sent when the signal arrives.
 */
import http from 'node:http';
import { entry } from '../support/entries';
import { testDbName } from '../support/service';
import { CLIENT_TIMEOUT_MS, startServiceProcess, tally, type ServiceProcess } from './support';

const CLIENTS = 12;
const MAX_REQUESTS_PER_CLIENT = 300;

interface Result {
  status: number;
  error?: string;
  body: string;
  contentType: string;
  startedAt: number;
  kind: string;
  /** The name a create sent. */
  name?: string;
}

/** One request on a fresh connection, with a client timeout; `hold` keeps the body back until it resolves. */
function request(port: number, method: string, path: string, body: string | undefined, kind: string, hold?: Promise<void>, onSent?: () => void): Promise<Result> {
  const startedAt = Date.now();
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent: false, timeout: CLIENT_TIMEOUT_MS, headers: body === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ status: 0, error: e.code ?? e.message, body: '', contentType: '', startedAt, kind }));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (e: NodeJS.ErrnoException) => resolve({ status: 0, error: `response ${e.code ?? e.message}`, body: '', contentType: '', startedAt, kind }));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), contentType: String(res.headers['content-type'] ?? ''), startedAt, kind }));
    });
    if (body === undefined) return void req.end();
    if (!hold) return void req.end(body);
    req.flushHeaders();
    req.write(body.slice(0, 10), () => onSent?.());
    void hold.then(() => req.end(body.slice(10)));
  });
}

let svc: ServiceProcess | undefined;
let verifier: ServiceProcess | undefined;
afterAll(async () => {
  await svc?.stop();
  await verifier?.stop();
});

test('When SIGTERM arrives while requests are in flight, then every accepted request completes, new connections are refused, the process exits 0 and every acknowledged create is stored', async () => {
  const dbName = testDbName();
  const env = { MONGODB_URI: process.env.TEST_MONGODB_URI!, MONGODB_DB: dbName };
  svc = await startServiceProcess(env);
  const port = Number(new URL(svc.url).port);

  let signalled = 0;
  let inFlightAtSignal = 0;
  let inFlight = 0;
  const results: Result[] = [];
  const client = async (c: number) => {
    for (let i = 0; i < MAX_REQUESTS_PER_CLIENT; i++) {
      const kind = ['create', 'query', 'read'][i % 3]!;
      const last = results.filter((r) => r.kind === 'create' && r.status === 201).pop();
      inFlight++;
      const r =
        kind === 'create'
          ? await request(port, 'POST', '/container_registry', JSON.stringify(entry({ container_registry_name: `shutdown-${c}-${i}` })), kind)
          : kind === 'query'
            ? await request(port, 'POST', '/container_registries?limit=50', JSON.stringify({ container_registry_tags: { $in: ['test'] } }), kind)
            : await request(port, 'GET', last ? `/container_registry/${JSON.parse(last.body).container_registry_id}` : '/healthz', undefined, kind);
      inFlight--;
      if (kind === 'create') r.name = `shutdown-${c}-${i}`;
      results.push(r);
      if (r.error === 'ECONNREFUSED') return;
    }
  };
  const load = Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));

  // One request whose body is still on its way when the signal arrives.
  let release!: () => void;
  const hold = new Promise<void>((r) => (release = r));
  let sent!: () => void;
  const headersSent = new Promise<void>((r) => (sent = r));
  const slow = request(port, 'POST', '/container_registry', JSON.stringify(entry({ container_registry_name: 'shutdown-slow' })), 'slow', hold, sent);
  await headersSent;
  await new Promise((r) => setTimeout(r, 1500));

  inFlightAtSignal = inFlight;
  signalled = Date.now();
  svc.child.kill('SIGTERM');
  setTimeout(release, 500);
  const [code, slowResult] = await Promise.all([svc.exited, slow, load]);

  const before = results.filter((r) => r.startedAt < signalled);
  const after = results.filter((r) => r.startedAt >= signalled);
  process.stderr.write(
    `[shutdown] requests ${results.length + 1}; before SIGTERM ${JSON.stringify(tally(before, (r) => r.status || r.error!))}; after ${JSON.stringify(tally(after, (r) => r.status || r.error!))}; in flight at SIGTERM ${inFlightAtSignal}; slow ${slowResult.status}; exit ${code}\n`,
  );
  expect(code).toBe(0);
  expect(inFlightAtSignal).toBeGreaterThan(0);
  // The request whose body arrived after the signal was accepted before it: it completes.
  expect(slowResult.status).toBe(201);
  // Every request sent before the signal got its normal answer, or (under CPU load, a few of the last ones) a
  // reset of its connection: one the kernel had completed but the process had not accepted or read yet when the
  // listener closed. Such a request was never processed (checked below: a reset create stored nothing); a
  // request the process had read is never cut off. In a deployment the preStop pause keeps traffic away then.
  expect(before.filter((r) => r.status !== 200 && r.status !== 201 && r.error !== 'ECONNRESET')).toEqual([]);
  expect(before.filter((r) => r.error === 'ECONNRESET').length).toBeLessThanOrEqual(CLIENTS);
  // After the signal: an answer (the connection was accepted), a refused connection, or a reset of a connection
  // the kernel had queued but the process never accepted (checked below to have had no effect); never a hang.
  expect(after.filter((r) => !(r.status === 200 || r.status === 201 || r.status === 503 || r.error === 'ECONNREFUSED' || r.error === 'ECONNRESET'))).toEqual([]);
  expect(after.filter((r) => r.status === 503 && !r.contentType.startsWith('application/problem+json'))).toEqual([]);
  expect(after.some((r) => r.error === 'ECONNREFUSED')).toBe(true);

  // Every acknowledged create is stored: a new instance on the same database reads each one back.
  verifier = await startServiceProcess(env);
  const acknowledged = [...results, slowResult].filter((r) => r.status === 201).map((r) => JSON.parse(r.body).container_registry_id as string);
  const missing: string[] = [];
  for (const id of acknowledged) {
    const r = await request(Number(new URL(verifier.url).port), 'GET', `/container_registry/${id}`, undefined, 'verify');
    if (r.status !== 200) missing.push(`${id}: ${r.status || r.error}`);
  }
  expect(missing).toEqual([]);
  // A create whose connection was reset was never processed.
  const reset = results.filter((r) => r.error === 'ECONNRESET' && r.kind === 'create').map((r) => r.name!);
  if (reset.length > 0) {
    const stored = await request(Number(new URL(verifier.url).port), 'POST', '/container_registries?limit=1000', JSON.stringify({ container_registry_name: { $in: reset } }), 'verify');
    expect(JSON.parse(stored.body)).toEqual([]);
  }
  process.stderr.write(`[shutdown] acknowledged creates verified: ${acknowledged.length}; reset creates verified absent: ${reset.length}\n`);
});
