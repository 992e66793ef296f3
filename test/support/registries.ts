/**
 * Real CNCF distribution 2.8 registries (Debian's `docker-registry`) for the tests, on 127.0.0.1 with free
 * ports and a config of our own in a temp dir: open, htpasswd (bcrypt), self-signed TLS, and token auth
 * backed by a small token server below (ES256 JWTs with the signing certificate in `x5c`, SPEC 11).
 * Images are pushed through the registry API (blob upload POST then PUT ?digest=, then PUT manifest).
 * `scripts/install-test-deps.sh` (npm pretest) installs the packages; `ensureTestDeps()` runs it too.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, randomBytes, randomUUID, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Agent, request } from 'undici';

export interface Credentials {
  username: string;
  password: string;
}

export interface RunningRegistry {
  /** Base URL, e.g. http://127.0.0.1:41234 */
  url: string;
  port: number;
  kind: RegistryOptions['auth'];
  /** PEM of the self-signed certificate (TLS registries). */
  caCertificate?: string;
  /** The user the registry accepts (htpasswd and token registries). */
  credentials?: Credentials;
  tokenServer?: TokenServer;
  /** Authorization header value for a push/pull of `scope` (undefined for open registries). */
  authorization(scope: string): string | undefined;
  /** Log of the registry process (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  auth?: 'none' | 'htpasswd' | 'token';
  tls?: boolean;
  credentials?: Credentials;
  /** Listen on this port (a registry started again where a stopped one was); default: a free one. */
  port?: number;
}

const ROOT = path.resolve(__dirname, '..', '..');
const running = new Set<RunningRegistry>();
/** Test-side HTTP for pushing and readiness; our own loopback registries only, so TLS is not verified here. */
const testAgent = new Agent({ connect: { rejectUnauthorized: false }, keepAliveTimeout: 1000 });

export function ensureTestDeps(): void {
  execFileSync('bash', [path.join(ROOT, 'scripts', 'install-test-deps.sh')], { stdio: 'inherit' });
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A self-signed P-256 certificate valid for IP 127.0.0.1; returns the paths. */
export function selfSignedCertificate(dir: string, name: string, cn: string): { cert: string; key: string } {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  openssl(
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1'],
    dir,
  );
  return { cert, key };
}

// ---------------------------------------------------------------------------------------------------------
// Token server

export interface TokenServer {
  /** The realm, e.g. http://127.0.0.1:41235/token */
  realm: string;
  service: string;
  issuer: string;
  /** PEM bundle the registry trusts (rootcertbundle). */
  certPath: string;
  /** Token requests seen: query and whether Basic credentials were valid. */
  requests: Array<{ scopes: string[]; service: string | null; authorized: boolean }>;
  mint(access: Access[], subject: string): string;
  close(): Promise<void>;
}

interface Access {
  type: string;
  name: string;
  actions: string[];
}

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

function parseScope(scope: string): Access | null {
  const parts = scope.split(':');
  if (parts.length < 3) return null;
  const type = parts[0]!;
  const actions = parts[parts.length - 1]!.split(',').filter(Boolean);
  return { type, name: parts.slice(1, -1).join(':'), actions };
}

export async function startTokenServer(dir: string, credentials: Credentials): Promise<TokenServer> {
  const { cert, key } = selfSignedCertificate(dir, 'token-signer', 'registry-db test token signer');
  const signingKey: KeyObject = createPrivateKey(readFileSync(key));
  const der = Buffer.from(
    readFileSync(cert, 'utf8')
      .replace(/-----(BEGIN|END) CERTIFICATE-----/g, '')
      .replace(/\s+/g, ''),
    'base64',
  );
  const service = 'registry-db-test-registry';
  const issuer = 'registry-db-test-issuer';
  const requests: TokenServer['requests'] = [];
  const mint = (access: Access[], subject: string): string => {
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'ES256', typ: 'JWT', x5c: [der.toString('base64')] };
    const claims = { iss: issuer, sub: subject, aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomUUID(), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(input), { key: signingKey, dsaEncoding: 'ieee-p1363' });
    return `${input}.${b64url(signature)}`;
  };
  const expected = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const scopes = url.searchParams.getAll('scope');
    const authorized = req.headers.authorization === expected;
    requests.push({ scopes, service: url.searchParams.get('service'), authorized });
    if (url.pathname !== '/token') {
      res.writeHead(404).end();
      return;
    }
    if (!authorized) {
      res.writeHead(401, { 'Content-Type': 'application/json', 'WWW-Authenticate': 'Basic realm="token"' });
      res.end(JSON.stringify({ details: 'invalid credentials' }));
      return;
    }
    const access = scopes.map(parseScope).filter((a): a is Access => a !== null);
    const token = mint(access, credentials.username);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certPath: cert,
    requests,
    mint,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Registry processes

function configYaml(opts: { port: number; storage: string; tls?: { cert: string; key: string }; auth: string }): string {
  return [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${opts.storage}`,
    '  delete:',
    '    enabled: true',
    '  cache:',
    '    blobdescriptor: inmemory',
    'http:',
    `  addr: 127.0.0.1:${opts.port}`,
    `  secret: ${randomBytes(16).toString('hex')}`,
    ...(opts.tls ? ['  tls:', `    certificate: ${opts.tls.cert}`, `    key: ${opts.tls.key}`] : []),
    'health:',
    '  storagedriver:',
    '    enabled: false',
    // Foreign layers (`urls`) are refused unless an allow list matches them; ours point at loopback only.
    'validation:',
    '  manifests:',
    '    urls:',
    '      allow:',
    "        - '^http://127\\.0\\.0\\.1(:[0-9]+)?/'",
    opts.auth,
    '',
  ].join('\n');
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<RunningRegistry> {
  const kind = opts.auth ?? 'none';
  const dir = mkdtempSync(path.join(os.tmpdir(), `registry-db-${kind}-`));
  const storage = path.join(dir, 'storage');
  const credentials = kind === 'none' ? undefined : (opts.credentials ?? { username: 'prober', password: `pw-${randomBytes(6).toString('hex')}` });
  let tokenServer: TokenServer | undefined;
  let auth = '';
  if (kind === 'htpasswd') {
    const line = execFileSync('htpasswd', ['-nbB', credentials!.username, credentials!.password], { encoding: 'utf8' }).trim();
    writeFileSync(path.join(dir, 'htpasswd'), `${line}\n`);
    auth = ['auth:', '  htpasswd:', '    realm: registry-db-test', `    path: ${path.join(dir, 'htpasswd')}`].join('\n');
  } else if (kind === 'token') {
    tokenServer = await startTokenServer(dir, credentials!);
    auth = [
      'auth:',
      '  token:',
      `    realm: ${tokenServer.realm}`,
      `    service: ${tokenServer.service}`,
      `    issuer: ${tokenServer.issuer}`,
      `    rootcertbundle: ${tokenServer.certPath}`,
    ].join('\n');
  }
  const tls = opts.tls ? selfSignedCertificate(dir, 'tls', '127.0.0.1') : undefined;

  for (let attempt = 0; ; attempt++) {
    const port = opts.port ?? (await freePort());
    const configPath = path.join(dir, 'config.yml');
    writeFileSync(configPath, configYaml({ port, storage, tls, auth }));
    const logPath = path.join(dir, `registry-${attempt}.log`);
    const fd = openSync(logPath, 'w');
    const child: ChildProcess = spawn('docker-registry', ['serve', configPath], { cwd: dir, stdio: ['ignore', fd, fd] });
    const url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    const log = (): string => readFileSync(logPath, 'utf8');
    let exited = false;
    const exit = new Promise<void>((resolve) => child.once('exit', () => { exited = true; resolve(); }));
    const ready = await waitReady(url, () => exited);
    if (!ready) {
      child.kill('SIGKILL');
      await exit;
      if (attempt < 2 && /address already in use/.test(log())) continue;
      throw new Error(`docker-registry (${kind}) did not start:\n${log()}`);
    }
    const registry: RunningRegistry = {
      url,
      port,
      kind,
      caCertificate: tls ? readFileSync(tls.cert, 'utf8') : undefined,
      credentials,
      tokenServer,
      authorization(scope: string): string | undefined {
        if (kind === 'htpasswd') return `Basic ${Buffer.from(`${credentials!.username}:${credentials!.password}`).toString('base64')}`;
        if (kind === 'token') return `Bearer ${tokenServer!.mint([parseScope(scope)!], credentials!.username)}`;
        return undefined;
      },
      log,
      async stop(): Promise<void> {
        running.delete(registry);
        if (!exited) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
          await exit;
          clearTimeout(timer);
        }
        await tokenServer?.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
    running.add(registry);
    return registry;
  }
}

async function waitReady(url: string, exited: () => boolean): Promise<boolean> {
  const until = Date.now() + 20_000;
  while (Date.now() < until && !exited()) {
    try {
      const res = await request(`${url}/v2/`, { dispatcher: testAgent, signal: AbortSignal.timeout(1000) });
      await res.body.dump();
      return true;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return false;
}

/** Stops every registry still running (afterAll). */
export async function stopAllRegistries(): Promise<void> {
  await Promise.all([...running].map((r) => r.stop()));
}

// ---------------------------------------------------------------------------------------------------------
// Pushing content through the registry API

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

export interface Content {
  digest: string;
  size: number;
  bytes: Buffer;
}

export function content(data: Buffer | string): Content {
  const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8');
  return { digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, size: bytes.length, bytes };
}

async function registryCall(
  registry: RunningRegistry,
  repo: string,
  method: 'POST' | 'PUT',
  url: string,
  body: Buffer | undefined,
  contentType: string | undefined,
  expected: number,
): Promise<Record<string, string | string[] | undefined>> {
  const headers: Record<string, string> = {};
  const authorization = registry.authorization(`repository:${repo}:pull,push`);
  if (authorization) headers.Authorization = authorization;
  if (contentType) headers['Content-Type'] = contentType;
  if (body) headers['Content-Length'] = String(body.length);
  const res = await request(url, { method, headers, body, dispatcher: testAgent });
  const text = await res.body.text();
  if (res.statusCode !== expected) throw new Error(`${method} ${url} answered ${res.statusCode} (expected ${expected}): ${text}`);
  return res.headers;
}

export async function pushBlob(registry: RunningRegistry, repo: string, blob: Content): Promise<void> {
  const started = await registryCall(registry, repo, 'POST', `${registry.url}/v2/${repo}/blobs/uploads/`, undefined, undefined, 202);
  const location = new URL(String(started.location), registry.url);
  location.searchParams.set('digest', blob.digest);
  await registryCall(registry, repo, 'PUT', location.toString(), blob.bytes, 'application/octet-stream', 201);
}

/** PUTs a manifest (object or exact bytes) under a tag or digest; returns the bytes as stored. */
export async function pushManifest(registry: RunningRegistry, repo: string, reference: string, mediaType: string, manifest: object | Buffer): Promise<Content> {
  const stored = content(Buffer.isBuffer(manifest) ? manifest : Buffer.from(JSON.stringify(manifest)));
  await registryCall(registry, repo, 'PUT', `${registry.url}/v2/${repo}/manifests/${reference}`, stored.bytes, mediaType, 201);
  return stored;
}

export interface PushedImage {
  manifest: Content;
  config: Content;
  layers: Content[];
}

/** Pushes config and layers, then an image manifest (OCI or Docker schema 2) under `reference`. */
export async function pushImage(
  registry: RunningRegistry,
  repo: string,
  reference: string,
  image: { config: Content; layers: Content[]; format?: 'oci' | 'docker'; foreignLayers?: Array<{ digest: string; size: number; urls: string[] }> },
): Promise<PushedImage> {
  const oci = (image.format ?? 'oci') === 'oci';
  for (const blob of [image.config, ...image.layers]) await pushBlob(registry, repo, blob);
  const manifest = {
    schemaVersion: 2,
    mediaType: oci ? MEDIA.ociManifest : MEDIA.dockerManifest,
    config: { mediaType: oci ? MEDIA.ociConfig : MEDIA.dockerConfig, digest: image.config.digest, size: image.config.size },
    layers: [
      ...image.layers.map((l) => ({ mediaType: oci ? MEDIA.ociLayer : MEDIA.dockerLayer, digest: l.digest, size: l.size })),
      ...(image.foreignLayers ?? []).map((l) => ({ mediaType: MEDIA.dockerForeignLayer, digest: l.digest, size: l.size, urls: l.urls })),
    ],
  };
  const stored = await pushManifest(registry, repo, reference, manifest.mediaType, manifest);
  return { manifest: stored, config: image.config, layers: image.layers };
}

/** Pushes the child manifests by digest, then an OCI index listing them under `tag`. */
export async function pushIndex(registry: RunningRegistry, repo: string, tag: string, children: Array<{ config: Content; layers: Content[]; platform: { os: string; architecture: string } }>): Promise<{ index: Content; images: PushedImage[] }> {
  const images: PushedImage[] = [];
  for (const child of children) {
    const manifestBody = {
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, digest: child.config.digest, size: child.config.size },
      layers: child.layers.map((l) => ({ mediaType: MEDIA.ociLayer, digest: l.digest, size: l.size })),
    };
    for (const blob of [child.config, ...child.layers]) await pushBlob(registry, repo, blob);
    const digest = content(Buffer.from(JSON.stringify(manifestBody))).digest;
    const manifest = await pushManifest(registry, repo, digest, MEDIA.ociManifest, manifestBody);
    images.push({ manifest, config: child.config, layers: child.layers });
  }
  const indexBody = {
    schemaVersion: 2,
    mediaType: MEDIA.ociIndex,
    manifests: images.map((img, i) => ({ mediaType: MEDIA.ociManifest, digest: img.manifest.digest, size: img.manifest.size, platform: children[i]!.platform })),
  };
  const index = await pushManifest(registry, repo, tag, MEDIA.ociIndex, indexBody);
  return { index, images };
}
