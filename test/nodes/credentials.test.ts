/**
 * Pull credentials for nodes (SPEC 18, issue 17): POST /pull-credentials and the kubelet exec credential
 * provider `registry-db-credential-provider`, against the real service and a real htpasswd docker-registry
 * that refuses anonymous pulls. The kubelet's side is played by its own Go types and codecs
 * (test/go/kubelet-decode: the request as the kubelet encodes it, the response decoded strictly), and the
 * credentials the provider hands out let skopeo pull. Every disclosure is logged without the secret,
 * counted, and limited per key; peers' entries are never disclosed.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CredentialCipher } from '../../src/registries/credentials';
import { discloseCredentials } from '../../src/registries/pull-credentials';
import { bearer, makeKeys } from '../security/keys';
import { buildKubeletDecode, skopeo, type Skopeo } from '../support/clients';
import { pageOf, peerEntry, startFeedPeer, upsert } from '../support/fake-peers';
import { closeAllFakeServers } from '../support/fake-servers';
import { CREDENTIAL_PROVIDER, runProgram } from '../support/node-programs';
import { content, ensureTestDeps, pushImage, startRegistry, stopAllRegistries, type RunningRegistry } from '../support/registries';
import { call, expectProblem, startTestService, type TestService } from '../support/service';

const keys = makeKeys();
let svc: TestService;
let locked: RunningRegistry;
let tmp: string;
let kubeletDecode: string;
let puller: string;
let client: Skopeo;
let image: string;
let lockedId: string;
let mirrorId: string;

const MIRROR_PASSWORD = 'mirror-secret-Zq81';

beforeAll(async () => {
  ensureTestDeps();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'registry-db-creds-'));
  kubeletDecode = buildKubeletDecode(tmp);
  client = skopeo(tmp);
  locked = await startRegistry({ auth: 'htpasswd' });
  await pushImage(locked, 'team/app', '1', { config: content(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } })), layers: [content('a layer the test pushed')] });
  image = `127.0.0.1:${locked.port}/team/app:1`;
  const peer = await startFeedPeer((q) => pageOf([upsert(1, peerEntry({ container_registry_name: 'peer-mirror', container_registry_image_prefix: '127.0.0.1:5994', container_registry_config: { mirror_of: [`127.0.0.1:${locked.port}`] } }))], q));
  svc = await startTestService({ API_KEYS: keys.env, PEERS: `eu=${peer.url}` });
  puller = path.join(tmp, 'puller.key');
  writeFileSync(puller, keys.puller);
  const created = await call(svc.url, 'POST', '/container_registry', { container_registry_name: 'locked', container_registry_public_url: locked.url, container_registry_credentials: locked.credentials }, bearer(keys.writer));
  expect(created.status).toBe(201);
  lockedId = created.body.container_registry_id;
  const mirror = await call(svc.url, 'POST', '/container_registry', {
    container_registry_name: 'locked-mirror',
    container_registry_public_url: 'http://127.0.0.1:5993',
    container_registry_image_prefix: '127.0.0.1:5993/cache',
    container_registry_config: { mirror_of: [`127.0.0.1:${locked.port}`] },
    container_registry_credentials: { username: 'mirror-user', password: MIRROR_PASSWORD },
  }, bearer(keys.writer));
  mirrorId = mirror.body.container_registry_id;
  await call(svc.url, 'POST', '/container_registry', { container_registry_name: 'no-credentials', container_registry_public_url: 'http://127.0.0.1:5992', container_registry_image_prefix: `127.0.0.1:${locked.port}/team` }, bearer(keys.writer));
  const deadline = Date.now() + 20_000;
  while ((await call(svc.url, 'GET', `/resolve?image=${image}`, undefined, bearer(keys.reader))).body?.candidates?.length !== 4) {
    if (Date.now() > deadline) throw new Error('the peer entry was not mirrored');
    await new Promise((r) => setTimeout(r, 100));
  }
}, 900_000);

afterAll(async () => {
  await svc?.close();
  await stopAllRegistries();
  await closeAllFakeServers();
  rmSync(tmp, { recursive: true, force: true });
});

/** The provider run as the kubelet runs it: the request the kubelet's codec encodes on stdin. */
async function provider(img: string, args: string[], env: Record<string, string> = {}) {
  const request = execFileSync(kubeletDecode, ['request', img], { encoding: 'utf8' });
  return runProgram(CREDENTIAL_PROVIDER, args, { input: request, env });
}

/** The response decoded by the kubelet's own types, strictly. */
function decode(stdout: string): { cacheKeyType: string; cacheDurationSeconds?: number; auth: Record<string, { username: string; password: string }> | null } {
  return JSON.parse(execFileSync(kubeletDecode, ['response'], { input: stdout, encoding: 'utf8' }));
}

describe('POST /pull-credentials', () => {
  test('When a puller asks for an image, then the answer holds the stored credentials of the candidates that have them, keyed by their image prefix, and none of a peer’s entry', async () => {
    const res = await call(svc.url, 'POST', '/pull-credentials', { image }, bearer(keys.puller));
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body).toEqual({
      image,
      auth: {
        '127.0.0.1:5993/cache': { username: 'mirror-user', password: MIRROR_PASSWORD, container_registry_id: mirrorId },
        [`127.0.0.1:${locked.port}`]: { ...locked.credentials, container_registry_id: lockedId },
      },
    });
    // /resolve names four candidates: the two above, the peer's mirror and an entry without credentials.
    const names = (await call(svc.url, 'GET', `/resolve?image=${image}`, undefined, bearer(keys.puller))).body.candidates.map((c: { container_registry_name: string }) => c.container_registry_name);
    expect(names.sort()).toEqual(['locked', 'locked-mirror', 'no-credentials', 'peer-mirror']);
    // admin may too
    expect((await call(svc.url, 'POST', '/pull-credentials', { image }, bearer(keys.admin))).body).toEqual(res.body);
  });

  test('When the image is invalid, unknown fields are sent, or nothing serves it, then it is a 400 naming the field or a 404', async () => {
    expectProblem(await call(svc.url, 'POST', '/pull-credentials', { image: 'Team/App' }, bearer(keys.puller)), 400, '/image');
    expectProblem(await call(svc.url, 'POST', '/pull-credentials', { image, password: 'x' }, bearer(keys.puller)), 400, '/password');
    expectProblem(await call(svc.url, 'POST', '/pull-credentials', {}, bearer(keys.puller)), 400, '/image');
    expectProblem(await call(svc.url, 'POST', '/pull-credentials', { image: 'ghcr.io/nobody/app' }, bearer(keys.puller)), 404);
  });

  test('When readers and writers ask, then they are refused with 403 naming the roles that may; a puller cannot write', async () => {
    for (const key of [keys.reader, keys.writer]) {
      const res = await call(svc.url, 'POST', '/pull-credentials', { image }, bearer(key));
      expectProblem(res, 403);
      expect(res.body.detail).toContain('needs the puller or admin role');
    }
    expectProblem(await call(svc.url, 'POST', '/container_registry', { container_registry_name: 'x', container_registry_public_url: 'http://127.0.0.1:9' }, bearer(keys.puller)), 403);
    expectProblem(await call(svc.url, 'PUT', `/container_registry/${lockedId}`, { $set: { container_registry_name: 'y' } }, bearer(keys.puller)), 403);
  });

  test('When credentials are disclosed, then each answer is one log line with key id, image and registry ids, never a password, and /metrics counts them', async () => {
    await call(svc.url, 'POST', '/pull-credentials', { image }, bearer(keys.puller));
    const logs = svc.logs();
    const lines = logs.split('\n').filter((l) => l.includes('"pull credentials disclosed"')).map((l) => JSON.parse(l));
    expect(lines.length).toBeGreaterThanOrEqual(2);
    const keyId = execFileSync('sh', ['-c', `printf %s "$0" | sha256sum | cut -c1-16`, keys.puller], { encoding: 'utf8' }).trim();
    expect(lines).toContainEqual(expect.objectContaining({ key_id: keyId, role: 'puller', image, registry_ids: [mirrorId, lockedId] }));
    for (const secret of [locked.credentials!.password, MIRROR_PASSWORD, keys.puller, keys.admin]) expect(logs).not.toContain(secret);
    const metrics = (await call(svc.url, 'GET', '/metrics', undefined, bearer(keys.reader))).text;
    expect(Number(/^registry_db_pull_credentials_requests_total\{outcome="disclosed"\} (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
    expect(Number(/^registry_db_pull_credentials_disclosed_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(4);
    expect(Number(/^registry_db_pull_credentials_requests_total\{outcome="not_found"\} (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
  });

  test('When one key asks more often than PULL_CREDENTIALS_RATE_LIMIT_MAX in a window, then it gets 429 with Retry-After, and its other routes are still served', async () => {
    const limited = await startTestService({ API_KEYS: keys.env, PULL_CREDENTIALS_RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: '600000' });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await call(limited.url, 'POST', '/pull-credentials', { image: 'ghcr.io/x/y' }, bearer(keys.puller))).status);
      expect(statuses).toEqual([404, 404, 404, 429, 429]);
      const refused = await call(limited.url, 'POST', '/pull-credentials', { image: 'ghcr.io/x/y' }, bearer(keys.puller));
      expectProblem(refused, 429);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      expect((await call(limited.url, 'POST', '/pull-credentials', { image: 'ghcr.io/x/y' }, bearer(keys.admin))).status).toBe(404);
      expect((await call(limited.url, 'GET', '/pull-config/registries.conf', undefined, bearer(keys.puller))).status).toBe(200);
    } finally {
      await limited.close();
    }
  });

  test('When a candidate comes from a peer, then its credentials are never disclosed, even if a document carried some', () => {
    const cipher = new CredentialCipher(Buffer.alloc(32, 7));
    const sealed = cipher.seal({ username: 'u', password: 'p' });
    const out = discloseCredentials(
      [
        { container_registry_id: 'eu:1', own_prefix: 'a.example.com', origin: 'eu' },
        { container_registry_id: '2', own_prefix: 'b.example.com', origin: null },
        { container_registry_id: '3', own_prefix: 'b.example.com', origin: null },
        { container_registry_id: '4', own_prefix: 'c.example.com', origin: null },
      ],
      (id) => (id === '4' ? { username: 'u', password_enc: 'v1.broken.x.y' } : sealed),
      cipher,
    );
    expect(out).toEqual({ auth: { 'b.example.com': { username: 'u', password: 'p', container_registry_id: '2' } }, registryIds: ['2'], unreadable: ['4'] });
  });
});

describe('registry-db-credential-provider', () => {
  test('When the kubelet asks for an image, then the answer decodes strictly as a v1 CredentialProviderResponse, and its credentials let skopeo pull from the registry that refuses anonymous pulls', async () => {
    const anonymous = client.copy(image, path.join(tmp, 'anonymous'), { anonymous: true, tlsVerify: false });
    await expect(anonymous).rejects.toThrow(/unauthorized|authentication required/i);
    const run = await provider(image, ['--server', svc.url, '--key-file', puller]);
    expect([run.code, run.stderr]).toEqual([0, '']);
    const decoded = decode(run.stdout);
    expect(decoded).toEqual({
      cacheKeyType: 'Registry',
      cacheDurationSeconds: 300,
      auth: { [`127.0.0.1:${locked.port}`]: locked.credentials, '127.0.0.1:5993/cache': { username: 'mirror-user', password: MIRROR_PASSWORD } },
    });
    const { username, password } = decoded.auth![`127.0.0.1:${locked.port}`]!;
    const dest = path.join(tmp, 'pulled');
    await client.copy(image, dest, { creds: `${username}:${password}`, tlsVerify: false });
    expect(readdirSync(dest)).toContain('manifest.json');
  }, 180_000);

  test('When the server and key come from REGISTRY_DB_URL and REGISTRY_DB_KEY_FILE, with a cache duration, then it answers the same way', async () => {
    const run = await provider(image, ['--cache-duration', '60'], { REGISTRY_DB_URL: svc.url, REGISTRY_DB_KEY_FILE: puller });
    expect(run.code).toBe(0);
    expect(decode(run.stdout)).toMatchObject({ cacheKeyType: 'Registry', cacheDurationSeconds: 60 });
  });

  test('When no registry of the catalog serves the image, then the answer carries no auth (the kubelet pulls without credentials)', async () => {
    const run = await provider('ghcr.io/nobody/app:1', ['--server', svc.url, '--key-file', puller]);
    expect(run.code).toBe(0);
    expect(decode(run.stdout)).toEqual({ cacheKeyType: 'Registry', cacheDurationSeconds: 300, auth: null });
  });

  test.each([
    ['a reader key (403)', () => ['--server', svc.url, '--key-file', keyFile(keys.reader)], undefined, 1, /answered 403: .*puller or admin/],
    ['a wrong key (401)', () => ['--server', svc.url, '--key-file', keyFile(keys.wrong)], undefined, 1, /answered 401/],
    ['an unreachable server', () => ['--server', 'http://127.0.0.1:9', '--key-file', puller], undefined, 1, /cannot reach http:\/\/127\.0\.0\.1:9/],
    ['a request that is not JSON', () => ['--server', svc.url, '--key-file', puller], 'image please', 1, /not JSON/],
    ['a request of another apiVersion', () => ['--server', svc.url, '--key-file', puller], JSON.stringify({ apiVersion: 'credentialprovider.kubelet.k8s.io/v1alpha1', kind: 'CredentialProviderRequest', image: 'x' }), 1, /speaks credentialprovider\.kubelet\.k8s\.io\/v1/],
    ['no server at all', () => ['--key-file', puller], undefined, 2, /--server URL is required/],
    ['an unreadable key file', () => ['--server', svc.url, '--key-file', path.join(tmp, 'missing.key')], undefined, 2, /cannot read it/],
  ])('When it is run with %s, then it writes why on stderr, nothing on stdout, and exits non-zero', async (_what, args, input, code, message) => {
    const run = input === undefined ? await provider(image, args()) : await runProgram(CREDENTIAL_PROVIDER, args(), { input });
    expect({ code: run.code, stdout: run.stdout }).toEqual({ code, stdout: '' });
    expect(run.stderr).toMatch(message);
    for (const secret of [keys.reader, keys.wrong, keys.puller]) expect(run.stderr).not.toContain(secret);
  });
});

function keyFile(key: string): string {
  const f = path.join(tmp, `${key.slice(0, 6)}.key`);
  writeFileSync(f, key);
  return f;
}
