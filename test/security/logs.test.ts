/**
 * Logs without secrets: after create, update, probe and error paths, the whole log of the run holds no
 * registry password (plain or inside a Basic header), no API key and no Authorization value; one JSON line
 * per request with method, route, status, latency and the request id (taken from or added as X-Request-Id).
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { PROTECTED_MODE_HINT } from '../../src/http/auth';
import { createLogger, registerSecret } from '../../src/logger';
import { entry } from '../support/entries';
import { call, startTestService, type TestService } from '../support/service';
import { bearer, makeKeys, simple } from './keys';

const keys = makeKeys();
const username = 'robot';
const password = `pw-${randomBytes(12).toString('hex')}`;
const password2 = `pw2-${randomBytes(12).toString('hex')}`;

let svc: TestService;
let registry: http.Server;
let registryUrl: string;
const seenAuthorization: string[] = [];

beforeAll(async () => {
  // A loopback "registry" that always asks for Basic credentials and refuses them: the probe sends them.
  registry = http.createServer((req, res) => {
    if (req.headers.authorization) seenAuthorization.push(req.headers.authorization);
    res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="test"', 'Docker-Distribution-API-Version': 'registry/2.0', 'Content-Type': 'application/json' });
    res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
  });
  await new Promise<void>((resolve) => registry.listen(0, '127.0.0.1', resolve));
  registryUrl = `http://127.0.0.1:${(registry.address() as AddressInfo).port}`;
  svc = await startTestService({ API_KEYS: keys.env, LOG_LEVEL: 'debug' });
});
afterAll(async () => {
  await svc.close();
  await new Promise<void>((resolve) => registry.close(() => resolve()));
});

function forbidden(): string[] {
  const basic = (p: string) => Buffer.from(`${username}:${p}`).toString('base64');
  return [password, password2, basic(password), basic(password2), keys.admin, keys.writer, keys.reader, keys.wrong];
}

test('When entries with credentials are created, updated, probed and refused, then no log line holds a password, an API key or an Authorization value', async () => {
  const created = await call(
    svc.url,
    'POST',
    '/container_registry',
    entry({ container_registry_public_url: registryUrl, container_registry_credentials: { username, password } }),
    { ...bearer(keys.admin), 'X-Request-Id': keys.admin },
  );
  expect(created.status).toBe(201);
  const id = created.body.container_registry_id as string;
  expect(created.body.container_registry_credentials).toEqual({ username, password_set: true });

  const probed = await call(svc.url, 'GET', `/check_container_health/${id}`, undefined, simple(keys.writer));
  expect(probed.status).toBe(200);
  expect(probed.body.status).toBe('degraded');
  expect(seenAuthorization.length).toBeGreaterThan(0); // the probe did send the credentials

  const updated = await call(svc.url, 'PUT', `/container_registry/${id}`, { $set: { container_registry_credentials: { username, password: password2 } } }, bearer(keys.writer));
  expect(updated.status).toBe(200);
  expect((await call(svc.url, 'GET', `/check_container_health/${id}`, undefined, bearer(keys.admin))).status).toBe(200);

  // Error paths: unknown key, a key too low, malformed JSON carrying a password, an invalid entry carrying one.
  expect((await call(svc.url, 'GET', `/container_registry/${id}`, undefined, bearer(keys.wrong))).status).toBe(401);
  expect((await call(svc.url, 'DELETE', `/container_registry/${id}`, undefined, bearer(keys.reader))).status).toBe(403);
  expect((await call(svc.url, 'POST', '/container_registry', `{"container_registry_credentials": {"password": "${password}"`, bearer(keys.writer))).status).toBe(400);
  const invalid = await call(svc.url, 'POST', '/container_registry', { container_registry_credentials: { username, password, extra: password2 } }, bearer(keys.writer));
  expect(invalid.status).toBe(400);
  expect((await call(svc.url, 'DELETE', `/container_registry/${id}`, undefined, bearer(keys.admin))).status).toBe(204);

  const log = svc.logs();
  expect(log.length).toBeGreaterThan(0);
  for (const secret of forbidden()) expect(log.includes(secret)).toBe(false);
  for (const header of seenAuthorization) expect(log.includes(header)).toBe(false);
  expect(log).not.toMatch(/(Bearer|Simple|Basic) (?!\[REDACTED\])[A-Za-z0-9+/=_-]{8,}/);
});

test('When a request is answered, then one JSON line records method, route, status, latency and the request id it echoed', async () => {
  const given = `req-${randomBytes(6).toString('hex')}`;
  const res = await call(svc.url, 'GET', '/container_registry/00000000-0000-4000-8000-000000000000', undefined, { ...bearer(keys.reader), 'X-Request-Id': given });
  expect(res.status).toBe(404);
  expect(res.headers.get('x-request-id')).toBe(given);
  const fresh = await call(svc.url, 'GET', '/healthz');
  expect(fresh.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);

  const lines = svc.logs().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const mine = lines.filter((l) => l.message === 'request' && l.request_id === given);
  expect(mine).toHaveLength(1);
  expect(mine[0]).toMatchObject({ level: 'info', method: 'GET', route: '/container_registry/:id', status: 404, principal: expect.stringMatching(/^reader:[0-9a-f]{16}$/) });
  expect(typeof mine[0]!.latency_ms).toBe('number');
  // Only 5xx are errors: no 4xx above produced an error line.
  expect(lines.filter((l) => l.level === 'error' && Number(l.status) < 500)).toEqual([]);
});

test('When any code logs a secret in a message, a field, a header object, a URL or an error, then the line is redacted', () => {
  const stream = new PassThrough();
  let out = '';
  stream.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const logger = createLogger('debug', stream);
  const apiKey = `k-${randomBytes(16).toString('hex')}`;
  registerSecret(apiKey);
  logger.info(`calling with ${apiKey}`);
  logger.info('headers', { headers: { authorization: `Bearer ${apiKey}`, Authorization: 'Basic dXNlcjpzZWNyZXQ=' }, api_key: apiKey });
  logger.warn('upstream', { url: `https://robot:${password}@registry.example/v2/`, note: `Authorization: Simple ${apiKey}` });
  logger.error('failed', { err: new Error(`token ${apiKey} rejected; password=${password}`), credentials: { username, password } });
  logger.debug('nested', { a: { b: { c: [{ password }] } } });
  expect(out.trim().split('\n')).toHaveLength(5);
  expect(out).not.toContain(apiKey);
  expect(out).not.toContain(password);
  expect(out).not.toContain('dXNlcjpzZWNyZXQ=');
  expect(out).toContain('[REDACTED]');
});

test('When the protected-mode startup hint is logged, then its API_KEYS=role:key stays readable while a real API_KEYS value is still redacted', () => {
  const stream = new PassThrough();
  let out = '';
  stream.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const logger = createLogger('debug', stream);
  logger.warn(PROTECTED_MODE_HINT, { host: '127.0.0.1' });
  const real = `admin:${randomBytes(12).toString('hex')}`;
  logger.warn(`started with API_KEYS=${real} and API_KEYS=ROLE:KEY2`);
  const [hint, leak] = out.trim().split('\n').map((l) => JSON.parse(l) as { message: string });
  expect(hint!.message).toBe(PROTECTED_MODE_HINT);
  expect(hint!.message).toContain('set API_KEYS=role:key,...');
  expect(leak!.message).toBe('started with API_KEYS=[REDACTED] and API_KEYS=[REDACTED]');
});

test('When a webhook secret (whsec_...) appears anywhere in a log line, then it is redacted', () => {
  const stream = new PassThrough();
  let out = '';
  stream.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const logger = createLogger('debug', stream);
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  logger.info(`subscription created with ${secret}`);
  logger.warn('delivery', { body: { url: 'http://127.0.0.1/hook', signing: secret }, err: new Error(`bad ${secret}`) });
  expect(out.trim().split('\n')).toHaveLength(2);
  expect(out).not.toContain(secret.slice(6));
  expect(out).toContain('[REDACTED]');
});
