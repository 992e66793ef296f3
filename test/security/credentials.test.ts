/**
 * Stored credentials go only to the registry they were given for (issue 9 item 1, issue 14 items 6 and 7).
 * A "home" registry accepts alice's password; an "attacker" listener on another origin asks every request
 * for Basic credentials and records every Authorization header. Whatever a client sends (the old
 * "\u0000kept" placeholder, an empty password, null, a username alone, the old username with any password,
 * a change of TLS trust), and whatever the registry does (redirect to another origin, to plain http, a token
 * realm over http on another host), the stored password reaches no origin but home's.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config';
import { createHttpClient } from '../../src/probe/client';
import { createSession } from '../../src/probe/session';
import { closeAllFakeServers, startFakeServer, type FakeServer } from '../support/fake-servers';
import { entry } from '../support/entries';
import { selfSignedCertificate } from '../support/registries';
import { call, startTestService, type TestService } from '../support/service';

const USER = 'alice';
const SECRET = 'S3cretPassw0rd-home-only';
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
const HOME_AUTH = basic(USER, SECRET);
const REGISTRY = { 'Docker-Distribution-API-Version': 'registry/2.0', 'Content-Type': 'application/json' };

let svc: TestService;
let home: FakeServer;
let attacker: FakeServer;
let tmp: string;

/** Every Authorization header that reached a server other than home, decoded where Basic. */
function leaked(...servers: FakeServer[]): string[] {
  return servers.flatMap((s) => s.requests.map((r) => r.authorization).filter((a): a is string => a !== undefined));
}
const carriesSecret = (auth: string) => auth === HOME_AUTH || (auth.startsWith('Basic ') && Buffer.from(auth.slice(6), 'base64').toString('utf8').includes(SECRET));

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'creds-'));
  svc = await startTestService({ PROBE_TIMEOUT_MS: '2000' });
  home = await startFakeServer((req, res) => {
    if (req.headers.authorization === HOME_AUTH) return void res.writeHead(200, REGISTRY).end('{}');
    res.writeHead(401, { ...REGISTRY, 'WWW-Authenticate': 'Basic realm="home"' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
  });
  attacker = await startFakeServer((_req, res) => {
    res.writeHead(401, { ...REGISTRY, 'WWW-Authenticate': 'Basic realm="attacker"' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
  });
});
afterAll(async () => {
  await closeAllFakeServers();
  await svc?.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function createHome(name: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await call(svc.url, 'POST', '/container_registry', entry({
    container_registry_name: name,
    container_registry_public_url: home.url,
    container_registry_credentials: { username: USER, password: SECRET },
    ...extra,
  }));
  expect(res.status).toBe(201);
  const check = await call(svc.url, 'GET', `/check_container_health/${res.body.container_registry_id}`);
  expect(check.body).toMatchObject({ status: 'healthy' });
  return res.body.container_registry_id as string;
}

describe('When a writer moves an entry to another origin', () => {
  const spellings: Array<[string, unknown, number]> = [
    ['the old placeholder password', { username: USER, password: '\u0000kept' }, 400],
    ['the placeholder with another username', { username: 'x', password: '\u0000kept' }, 400],
    ['an empty password', { username: USER, password: '' }, 400],
    ['null', null, 400],
    ['a username alone', { username: USER }, 400],
    ['a password that is not a string', { username: USER, password: 42 }, 400],
    ['an empty object', {}, 400],
    ['the old username with another password', { username: USER, password: 'guessed-by-attacker' }, 200],
    ['no credentials at all', undefined, 200],
  ];

  test.each(spellings)('with %s, then the stored password never reaches the new origin', async (label, creds, expected) => {
    const id = await createHome(`creds-${label.replace(/\W+/g, '-')}`);
    const before = attacker.requests.length;
    const $set: Record<string, unknown> = { container_registry_public_url: attacker.url };
    if (creds !== undefined) $set.container_registry_credentials = creds;
    for (const body of [{ $set }, $set]) {
      const res = await call(svc.url, 'PUT', `/container_registry/${id}`, body);
      expect(res.status).toBe(expected);
      if (expected === 400) {
        expect(res.body.errors[0].path).toMatch(/container_registry_credentials/);
        continue;
      }
      if (creds === undefined) expect(res.body.container_registry_credentials).toBeUndefined();
      else expect(res.body.container_registry_credentials).toEqual({ username: USER, password_set: true });
      // The probe then goes to the attacker, with whatever was stored.
      const check = await call(svc.url, 'GET', `/check_container_health/${id}`);
      expect(check.status).toBe(200);
    }
    const stored = await call(svc.url, 'GET', `/container_registry/${id}`);
    expect(stored.body.container_registry_public_url).toBe(expected === 400 ? home.url : attacker.url);
    if (expected === 200) expect(attacker.requests.length).toBeGreaterThan(before);
    expect(leaked(attacker).filter(carriesSecret)).toEqual([]);
  });

  test('with $unset of the credentials, then they are removed and nothing is sent anywhere', async () => {
    const id = await createHome('creds-unset');
    const res = await call(svc.url, 'PUT', `/container_registry/${id}`, { $set: { container_registry_public_url: attacker.url }, $unset: { container_registry_credentials: '' } });
    expect(res.status).toBe(200);
    expect(res.body.container_registry_credentials).toBeUndefined();
    await call(svc.url, 'GET', `/check_container_health/${id}`);
    expect(leaked(attacker).filter(carriesSecret)).toEqual([]);
  });

  test('with only a path change on the same origin, then the credentials stay', async () => {
    const id = await createHome('creds-same-origin');
    const res = await call(svc.url, 'PUT', `/container_registry/${id}`, { container_registry_public_url: `${home.url}/` });
    expect(res.status).toBe(200);
    expect(res.body.container_registry_credentials).toEqual({ username: USER, password_set: true });
  });
});

describe('When the TLS trust of an entry changes', () => {
  const changes: Array<[string, Record<string, unknown>]> = [
    ['insecure_skip_tls_verify turned on (dotted path)', { 'container_registry_config.insecure_skip_tls_verify': true }],
    ['insecure_skip_tls_verify turned on (whole config)', { container_registry_config: { insecure_skip_tls_verify: true } }],
    ['a CA certificate added', { 'container_registry_config.ca_certificate': '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' }],
  ];
  test.each(changes)('with %s and no new credentials, then the stored ones are dropped', async (label, $set) => {
    const id = await createHome(`trust-${label.replace(/\W+/g, '-')}`);
    const res = await call(svc.url, 'PUT', `/container_registry/${id}`, { $set });
    expect(res.status).toBe(200);
    expect(res.body.container_registry_credentials).toBeUndefined();
    const raw = await svc.db.collection('container_registries').findOne({ _id: id as never });
    expect(raw!.container_registry_credentials).toBeUndefined();
  });

  test('with a CA certificate replaced and new credentials in the same update, then the new ones are kept', async () => {
    const id = await createHome('trust-replaced-with-creds', { container_registry_config: { ca_certificate: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' } });
    const res = await call(svc.url, 'PUT', `/container_registry/${id}`, {
      $set: { 'container_registry_config.ca_certificate': '-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n', container_registry_credentials: { username: 'bob', password: 'new-pw-bob' } },
    });
    expect(res.status).toBe(200);
    expect(res.body.container_registry_credentials).toEqual({ username: 'bob', password_set: true });
  });

  test('with verification turned back on, then the credentials stay (trust narrowed)', async () => {
    const id = await createHome('trust-narrowed', { container_registry_config: { insecure_skip_tls_verify: true } });
    const res = await call(svc.url, 'PUT', `/container_registry/${id}`, { $set: { 'container_registry_config.insecure_skip_tls_verify': false } });
    expect(res.body.container_registry_credentials).toEqual({ username: USER, password_set: true });
  });
});

describe('When the registry sends the probe elsewhere', () => {
  test('When /v2/ redirects to another origin that asks for Basic, then the credentials are not sent there', async () => {
    const redirector = await startFakeServer((_req, res) => void res.writeHead(302, { Location: `${attacker.url}/v2/` }).end());
    const res = await call(svc.url, 'POST', '/container_registry', entry({
      container_registry_name: 'redirect-away',
      container_registry_public_url: redirector.url,
      container_registry_credentials: { username: USER, password: SECRET },
    }));
    const before = attacker.requests.length;
    const check = await call(svc.url, 'GET', `/check_container_health/${res.body.container_registry_id}`);
    expect(check.body).toMatchObject({ status: 'degraded', error: 'auth_failed' });
    expect(attacker.requests.length).toBeGreaterThan(before);
    expect(leaked(attacker, redirector).filter(carriesSecret)).toEqual([]);
  });

  test('When an https registry redirects to plain http, then the credentials are not sent in clear text', async () => {
    const { cert, key } = selfSignedCertificate(tmp, 'downgrade', 'downgrade');
    const https: HttpsServer = createHttpsServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) => {
      res.writeHead(302, { Location: `${attacker.url}${req.url ?? '/'}` }).end();
    });
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
    try {
      const url = `https://127.0.0.1:${(https.address() as AddressInfo).port}`;
      const res = await call(svc.url, 'POST', '/container_registry', entry({
        container_registry_name: 'downgrade',
        container_registry_public_url: url,
        container_registry_config: { ca_certificate: readFileSync(cert, 'utf8') },
        container_registry_credentials: { username: USER, password: SECRET },
      }));
      const check = await call(svc.url, 'GET', `/check_container_health/${res.body.container_registry_id}`);
      expect(check.body).toMatchObject({ status: 'degraded', error: 'auth_failed' });
      expect(leaked(attacker).filter(carriesSecret)).toEqual([]);
    } finally {
      https.closeAllConnections();
      await new Promise<void>((resolve) => https.close(() => resolve()));
    }
  });

  test('When a Bearer realm is plain http on another host, then no Basic credentials go to it', async () => {
    const realm = await startFakeServer((_req, res) => void res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"token":"t"}'));
    // "localhost" is another host than 127.0.0.1 for the rule, though both are loopback here.
    const registry = await startFakeServer((req, res) => {
      if (req.headers.authorization === 'Bearer t') return void res.writeHead(200, REGISTRY).end('{}');
      res.writeHead(401, { ...REGISTRY, 'WWW-Authenticate': `Bearer realm="http://localhost:${realm.port}/token",service="s"` }).end('{}');
    });
    const res = await call(svc.url, 'POST', '/container_registry', entry({
      container_registry_name: 'realm-elsewhere',
      container_registry_public_url: registry.url,
      container_registry_credentials: { username: USER, password: SECRET },
    }));
    const check = await call(svc.url, 'GET', `/check_container_health/${res.body.container_registry_id}`);
    expect(check.body).toMatchObject({ status: 'degraded', error: 'auth_failed' });
    expect(realm.requests.filter((r) => r.authorization !== undefined)).toEqual([]);
    expect(leaked(attacker, realm).filter(carriesSecret)).toEqual([]);
  });
});

describe('When a storage crawl is pointed elsewhere', () => {
  test('When a page or Link names another origin, then the crawl session sends it no password and no token', async () => {
    const client = createHttpClient(loadConfig({ PROBE_ALLOWED_NETWORKS: '127.0.0.0/8' }));
    try {
      const session = createSession(client, { id: 'crawl', url: home.url, credentials: { username: USER, password: SECRET } }, AbortSignal.timeout(5000));
      // Home challenges with Basic: the session answers it there.
      expect((await session.get('_catalog', 'registry:catalog:*', 'application/json', 4096)).status).toBe(200);
      expect(home.requests.some((r) => r.authorization === HOME_AUTH)).toBe(true);
      // An absolute URL on another origin (as a hostile Link header would give) gets nothing.
      const before = attacker.requests.length;
      const elsewhere = await session.get(new URL(`${attacker.url}/v2/_catalog?last=x`), 'registry:catalog:*', 'application/json', 4096);
      expect(elsewhere.status).toBe(401);
      expect(attacker.requests.slice(before).map((r) => r.authorization)).toEqual([undefined]);
    } finally {
      await client.close();
    }
  });
});
