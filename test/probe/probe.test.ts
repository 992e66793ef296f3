/**
 * The /v2/ health probe (SPEC section 6) against real distribution 2.8 registries and loopback fake servers.
 * Every probe runs with PROBE_ALLOWED_NETWORKS=127.0.0.0/8,::1/128: nothing leaves loopback.
 */
import { loadConfig } from '../../src/config';
import { createProber, type ClosableProber } from '../../src/probe/probe';
import {
  bearerRegistry,
  closeAllFakeServers,
  hang,
  htmlPage,
  redirectLoop,
  reset,
  serverError,
  startFakeServer,
  status,
  tokenEndpoint,
  tooManyRequests,
  type FakeServer,
} from '../support/fake-servers';
import { ensureTestDeps, startRegistry, stopAllRegistries, type RunningRegistry } from '../support/registries';

const LOOPBACK = { PROBE_ALLOWED_NETWORKS: '127.0.0.0/8,::1/128' };
const config = loadConfig({ ...LOOPBACK, PROBE_TIMEOUT_MS: '5000' });

let prober: ClosableProber;
let open: RunningRegistry;
let basic: RunningRegistry;
let token: RunningRegistry;
let tls: RunningRegistry;

beforeAll(async () => {
  ensureTestDeps();
  prober = createProber(config);
  [open, basic, token, tls] = await Promise.all([
    startRegistry(),
    startRegistry({ auth: 'htpasswd' }),
    startRegistry({ auth: 'token' }),
    startRegistry({ tls: true }),
  ]);
}, 120_000);

afterAll(async () => {
  await prober?.close();
  await stopAllRegistries();
  await closeAllFakeServers();
});

const target = (url: string, extra: Partial<Parameters<ClosableProber>[0]> = {}) => ({ id: 'test', url, ...extra });

describe('real registries', () => {
  test('When the registry is open, then the probe is healthy with api_version registry/2.0', async () => {
    const result = await prober(target(open.url));
    expect(result).toMatchObject({ status: 'healthy', http_status: 200, api_version: 'registry/2.0', auth_required: false, error: null, detail: null, tls: null });
    expect(result.auth).toEqual({ required: false, scheme: null, realm: null, service: null });
    expect(Number.isNaN(Date.parse(result.checked_at))).toBe(false);
    expect(result.latency_ms).toBeGreaterThan(0);
  });

  test('When the public URL ends with a slash, then /v2/ is still probed once and healthy', async () => {
    const result = await prober(target(`${open.url}/`));
    expect(result).toMatchObject({ status: 'healthy', http_status: 200 });
  });

  test('When an htpasswd registry is probed without credentials, then it is healthy with auth_required and the Basic challenge', async () => {
    const result = await prober(target(basic.url));
    expect(result).toMatchObject({ status: 'healthy', http_status: 401, api_version: 'registry/2.0', auth_required: true, error: null });
    expect(result.auth).toEqual({ required: true, scheme: 'Basic', realm: 'registry-db-test', service: null });
  });

  test('When an htpasswd registry is probed with the right credentials, then it is healthy after a 200', async () => {
    const result = await prober(target(basic.url, { credentials: basic.credentials }));
    expect(result).toMatchObject({ status: 'healthy', http_status: 200, auth_required: true, error: null });
    expect(result.auth?.scheme).toBe('Basic');
  });

  test('When an htpasswd registry is probed with wrong credentials, then it is degraded with auth_failed', async () => {
    const result = await prober(target(basic.url, { credentials: { username: basic.credentials!.username, password: 'wrong' } }));
    expect(result).toMatchObject({ status: 'degraded', http_status: 401, auth_required: true, error: 'auth_failed' });
    expect(result.detail).toMatch(/Basic credentials refused/);
  });

  test('When a token registry is probed with credentials, then it is healthy after a real Bearer exchange with the realm on another port', async () => {
    const server = token.tokenServer!;
    const before = server.requests.length;
    const result = await prober(target(token.url, { credentials: token.credentials }));
    expect(result).toMatchObject({ status: 'healthy', http_status: 200, api_version: 'registry/2.0', auth_required: true, error: null });
    expect(result.auth).toEqual({ required: true, scheme: 'Bearer', realm: server.realm, service: server.service });
    expect(new URL(server.realm).port).not.toBe(String(token.port));
    expect(server.requests.slice(before)).toEqual([{ scopes: [], service: server.service, authorized: true }]);
  });

  test('When a token registry is probed without credentials, then it is healthy with auth_required and the Bearer realm and service', async () => {
    const result = await prober(target(token.url));
    expect(result).toMatchObject({ status: 'healthy', http_status: 401, auth_required: true });
    expect(result.auth).toEqual({ required: true, scheme: 'Bearer', realm: token.tokenServer!.realm, service: token.tokenServer!.service });
  });

  test('When the token service refuses the credentials, then the probe is degraded with auth_failed', async () => {
    const result = await prober(target(token.url, { credentials: { username: 'prober', password: 'wrong' } }));
    expect(result).toMatchObject({ status: 'degraded', error: 'auth_failed' });
    expect(result.detail).toMatch(/token service .* refused the credentials \(HTTP 401\)/);
  });

  test('When a self-signed TLS registry is probed by default, then it is unhealthy with tls_error', async () => {
    const result = await prober(target(tls.url));
    expect(result).toMatchObject({ status: 'unhealthy', error: 'tls_error', http_status: null });
    expect(result.detail).toMatch(/self[- ]signed|certificate/i);
  });

  test('When the self-signed certificate is given as the registry CA, then it is healthy and the TLS details are recorded', async () => {
    const result = await prober(target(tls.url, { caCertificate: tls.caCertificate }));
    expect(result).toMatchObject({ status: 'healthy', http_status: 200, api_version: 'registry/2.0' });
    expect(result.tls?.protocol).toMatch(/^TLSv1\.[23]$/);
    expect(result.tls?.cipher).toBeTruthy();
    expect(result.tls?.cert_subject).toBe('CN=127.0.0.1');
    expect(result.tls?.cert_issuer).toBe('CN=127.0.0.1');
    const expires = Date.parse(result.tls!.cert_expires_at!);
    expect(expires).toBeGreaterThan(Date.now());
    expect(expires).toBeLessThan(Date.now() + 3 * 86_400_000);
  });

  test('When insecure_skip_tls_verify is set, then the self-signed registry is healthy', async () => {
    const result = await prober(target(tls.url, { insecureSkipTlsVerify: true }));
    expect(result).toMatchObject({ status: 'healthy', http_status: 200 });
    expect(result.tls?.cert_subject).toBe('CN=127.0.0.1');
  });

  test('When a registry has been stopped, then the probe is unhealthy with connection_refused', async () => {
    const stopped = await startRegistry();
    expect((await prober(target(stopped.url))).status).toBe('healthy');
    await stopped.stop();
    const result = await prober(target(stopped.url));
    expect(result).toMatchObject({ status: 'unhealthy', error: 'connection_refused', http_status: null });
    expect(result.detail).toMatch(/ECONNREFUSED/);
  });
});

describe('fake servers', () => {
  let servers: Record<string, FakeServer>;
  beforeAll(async () => {
    const realm = await startFakeServer(tokenEndpoint('robot', 's3cret', { access_token: 'abc.def.ghi', expires_in: 120 }));
    servers = {
      hang: await startFakeServer(hang),
      limited: await startFakeServer(tooManyRequests),
      error: await startFakeServer(serverError),
      html: await startFakeServer(htmlPage),
      loop: await startFakeServer(redirectLoop),
      realm,
      bearer: await startFakeServer(bearerRegistry(() => `${realm.url}/oauth/token`, 'abc.def.ghi')),
      prefixed: await startFakeServer((req, res) =>
        req.url === '/some/prefix/v2/' ? status(200, { 'Content-Type': 'application/json' }, '{}')(req, res, servers.prefixed!) : status(404)(req, res, servers.prefixed!),
      ),
      plainJson: await startFakeServer(status(200, { 'Content-Type': 'application/json' }, '{}')),
      forbidden: await startFakeServer(status(403, { 'Content-Type': 'text/plain' }, 'forbidden')),
      denied: await startFakeServer(status(200, { 'Docker-Distribution-API-Version': 'registry/2.0' }, '{}'), '127.0.0.2'),
    };
  });

  test('When the server accepts and never answers, then the probe is unhealthy with timeout within the time limit plus one second', async () => {
    const short = createProber(loadConfig({ ...LOOPBACK, PROBE_TIMEOUT_MS: '1000' }));
    try {
      const result = await short(target(servers.hang!.url));
      expect(result).toMatchObject({ status: 'unhealthy', error: 'timeout', http_status: null });
      expect(result.latency_ms).toBeGreaterThanOrEqual(1000);
      expect(result.latency_ms).toBeLessThan(1000 + 1000);
    } finally {
      await short.close();
    }
  });

  test('When the registry answers 429, then the probe is degraded with rate_limited', async () => {
    expect(await prober(target(servers.limited!.url))).toMatchObject({ status: 'degraded', error: 'rate_limited', http_status: 429 });
  });

  test('When the registry answers 500, then the probe is unhealthy with http_error', async () => {
    const result = await prober(target(servers.error!.url));
    expect(result).toMatchObject({ status: 'unhealthy', error: 'http_error', http_status: 500 });
    expect(result.detail).toMatch(/HTTP 500/);
  });

  test('When a web server answers 200 with an HTML page, then the probe is unhealthy with not_a_registry', async () => {
    const result = await prober(target(servers.html!.url));
    expect(result).toMatchObject({ status: 'unhealthy', error: 'not_a_registry', http_status: 200 });
    expect(result.detail).toMatch(/text\/html/);
  });

  test('When a 200 carries a JSON body but no API version header, then it counts as a registry', async () => {
    expect(await prober(target(servers.plainJson!.url))).toMatchObject({ status: 'healthy', api_version: null });
  });

  test('When a 403 comes without any challenge or registry header, then the probe is unhealthy with http_error', async () => {
    expect(await prober(target(servers.forbidden!.url))).toMatchObject({ status: 'unhealthy', error: 'http_error', http_status: 403 });
  });

  test('When the server redirects forever, then the probe stops after 3 redirects with too_many_redirects', async () => {
    const before = servers.loop!.requests.length;
    const result = await prober(target(servers.loop!.url));
    expect(result).toMatchObject({ status: 'unhealthy', error: 'too_many_redirects' });
    expect(servers.loop!.requests.length - before).toBe(4);
  });

  test('When the public URL has a path prefix, then /prefix/v2/ is probed', async () => {
    const result = await prober(target(`${servers.prefixed!.url}/some/prefix`));
    expect(result).toMatchObject({ status: 'healthy', http_status: 200 });
    expect(servers.prefixed!.requests.at(-1)?.url).toBe('/some/prefix/v2/');
  });

  test('When the token realm is on another port and answers only access_token, then the Bearer retry succeeds', async () => {
    const result = await prober(target(servers.bearer!.url, { credentials: { username: 'robot', password: 's3cret' } }));
    expect(result).toMatchObject({ status: 'healthy', http_status: 200, auth: { required: true, scheme: 'Bearer', service: 'fake-service' } });
    const tokenRequest = servers.realm!.requests.at(-1)!;
    expect(tokenRequest.url).toBe('/oauth/token?service=fake-service&account=robot');
    expect(servers.bearer!.requests.at(-1)?.authorization).toBe('Bearer abc.def.ghi');
  });

  test('When the policy allows only 127.0.0.1/32 and the registry is on 127.0.0.2, then the probe is blocked_by_policy and the listener sees zero connections', async () => {
    const strict = createProber(loadConfig({ PROBE_ALLOWED_NETWORKS: '127.0.0.1/32' }));
    try {
      const result = await strict(target(servers.denied!.url));
      expect(result).toMatchObject({ status: 'unhealthy', error: 'blocked_by_policy', http_status: null });
      expect(result.detail).toMatch(/127\.0\.0\.2/);
      // Reachable for a policy that allows it: the listener is really there.
      const allowed = await prober(target(servers.denied!.url));
      expect(allowed.status).toBe('healthy');
      expect(servers.denied!.connections()).toBe(1);
    } finally {
      await strict.close();
    }
  });

  test('When a host name resolves only to addresses the policy denies, then the probe is blocked_by_policy and nothing connects', async () => {
    const strict = createProber(loadConfig({ PROBE_ALLOWED_NETWORKS: '10.0.0.0/8' }));
    try {
      const before = servers.plainJson!.connections();
      const result = await strict(target(`http://localhost:${servers.plainJson!.port}`));
      expect(result).toMatchObject({ status: 'unhealthy', error: 'blocked_by_policy' });
      expect(servers.plainJson!.connections()).toBe(before);
    } finally {
      await strict.close();
    }
  });

  test('When a redirect points at a denied address, then the probe is blocked_by_policy before connecting there', async () => {
    const before = servers.denied!.connections();
    const redirector = await startFakeServer(status(302, { Location: `${servers.denied!.url}/v2/` }));
    const strict = createProber(loadConfig({ PROBE_ALLOWED_NETWORKS: '127.0.0.1/32' }));
    try {
      expect(await strict(target(redirector.url))).toMatchObject({ error: 'blocked_by_policy' });
      expect(servers.denied!.connections()).toBe(before);
    } finally {
      await strict.close();
    }
  });

  test('When the server drops the connection without answering, then the probe is unhealthy with connection_reset', async () => {
    const dropper = await startFakeServer(reset);
    const result = await prober(target(dropper.url));
    expect(result).toMatchObject({ status: 'unhealthy', error: 'connection_reset', http_status: null });
    expect(result.detail).toBeTruthy();
  });

  test('When the token realm is on an address the policy refuses, then the probe is blocked_by_policy and the realm sees zero connections', async () => {
    const realm = await startFakeServer(tokenEndpoint('robot', 's3cret', { token: 't' }), '127.0.0.2');
    const registry = await startFakeServer(bearerRegistry(() => `${realm.url}/token`, 't'));
    const strict = createProber(loadConfig({ PROBE_ALLOWED_NETWORKS: '127.0.0.1/32' }));
    try {
      const result = await strict(target(registry.url, { credentials: { username: 'robot', password: 's3cret' } }));
      expect(result).toMatchObject({ status: 'unhealthy', error: 'blocked_by_policy', http_status: 401 });
      expect(realm.connections()).toBe(0);
    } finally {
      await strict.close();
    }
  });

  test('When the token service is down while the registry answers, then the probe is degraded with token_error', async () => {
    const gone = await startFakeServer(hang);
    const deadRealm = `${gone.url}/token`;
    await gone.close();
    const registry = await startFakeServer(bearerRegistry(() => deadRealm, 't'));
    const result = await prober(target(registry.url, { credentials: { username: 'robot', password: 's3cret' } }));
    expect(result).toMatchObject({ status: 'degraded', error: 'token_error', http_status: 401 });
    expect(result.detail).toMatch(/ECONNREFUSED/);
  });

  test('When a redirect leads to another origin, then the credentials are not sent there', async () => {
    const elsewhere = await startFakeServer(status(401, { 'WWW-Authenticate': 'Basic realm="elsewhere"' }));
    const redirector = await startFakeServer((req, res) => {
      if (req.headers.authorization) res.writeHead(302, { Location: `${elsewhere.url}/v2/` }).end();
      else res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="here"' }).end();
    });
    const result = await prober(target(redirector.url, { credentials: { username: 'u', password: 'p' } }));
    expect(redirector.requests.map((r) => r.authorization !== undefined)).toEqual([false, true]);
    expect(elsewhere.requests).toEqual([{ method: 'GET', url: '/v2/', authorization: undefined }]);
    expect(result).toMatchObject({ status: 'degraded', error: 'auth_failed' });
  });

  test('When the URL is not an http(s) URL, then the probe is unhealthy with invalid_url', async () => {
    expect(await prober(target('ftp://127.0.0.1/'))).toMatchObject({ status: 'unhealthy', error: 'invalid_url' });
    expect(await prober(target('not a url'))).toMatchObject({ status: 'unhealthy', error: 'invalid_url' });
  });
});
