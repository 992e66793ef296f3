/**
 * Protected mode (no API_KEYS): loopback clients are served, the others get a 403 problem saying how to set
 * keys. Decided on a real socket from a real non-loopback address: the test creates a network namespace and
 * a veth pair of its own (198.18.0.0/15, the benchmarking range, nothing else on the machine uses it), and a
 * client inside the namespace reaches the service (listening on 0.0.0.0) through the pair. Traffic stays on
 * this machine, between the test's own namespace and the service. Where namespaces cannot be created (not
 * root, no `ip`), the test fails saying so; it never skips. The address decision itself is also checked at
 * the function that takes the peer address.
 */
import { execFile } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import http from 'node:http';
import { promisify } from 'node:util';
import { isLoopbackAddress, isLoopbackClient } from '../../src/http/auth';
import { call, startTestService, type TestService } from '../support/service';

const run = promisify(execFile);

interface Namespace {
  name: string;
  /** The service's side of the pair (an address of this machine). */
  hostAddress: string;
  /** The client's address inside the namespace. */
  clientAddress: string;
  /** GET `url` from inside the namespace. */
  get(url: string): Promise<{ status: number; type: string; body: any }>;
  remove(): Promise<void>;
}

/** A network namespace joined to this machine by a veth pair; async throughout (the service runs in this process). */
async function createNamespace(): Promise<Namespace> {
  const id = randomBytes(3).toString('hex');
  const name = `rdbtest-${id}`;
  const [outside, inside] = [`rdb${id}a`, `rdb${id}b`];
  const net = `198.${18 + randomInt(2)}.${randomInt(256)}.${4 * randomInt(64)}`;
  const [a, b, c, d] = net.split('.').map(Number) as [number, number, number, number];
  const hostAddress = `${a}.${b}.${c}.${d + 1}`;
  const clientAddress = `${a}.${b}.${c}.${d + 2}`;
  const ip = (...args: string[]) => run('ip', args);
  try {
    await ip('netns', 'add', name);
    await ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', inside);
    await ip('link', 'set', inside, 'netns', name);
    await ip('addr', 'add', `${hostAddress}/30`, 'dev', outside);
    await ip('link', 'set', outside, 'up');
    await ip('netns', 'exec', name, 'ip', 'addr', 'add', `${clientAddress}/30`, 'dev', inside);
    await ip('netns', 'exec', name, 'ip', 'link', 'set', inside, 'up');
    await ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up');
  } catch (e) {
    await ip('netns', 'del', name).catch(() => undefined);
    await ip('link', 'del', outside).catch(() => undefined);
    throw new Error(
      `This test needs a network namespace and a veth pair of its own (run as root with iproute2): ${(e as { stderr?: string }).stderr?.trim() || (e as Error).message}. ` +
        'It checks protected mode from a real non-loopback client and does not skip.',
    );
  }
  const client = `
    const http = require('node:http');
    const req = http.get(process.argv[1], { agent: false, timeout: 10000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => process.stdout.write(JSON.stringify({ status: res.statusCode, type: String(res.headers['content-type']), body: text ? JSON.parse(text) : undefined })));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => { process.stderr.write(String(e)); process.exit(1); });`;
  return {
    name,
    hostAddress,
    clientAddress,
    get: async (url) => JSON.parse((await run('ip', ['netns', 'exec', name, process.execPath, '-e', client, url], { timeout: 20_000 })).stdout),
    remove: async () => {
      await ip('netns', 'del', name).catch(() => undefined);
      await ip('link', 'del', outside).catch(() => undefined);
    },
  };
}

/** A request to 127.0.0.1:port (GET unless `method`), with raw headers: Host and Origin as a browser would send them. */
function getLocal(port: number, path: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<{ status: number; type: string; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers: { ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...headers }, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('Protected mode on a real socket', () => {
  let svc: TestService;
  let port: number;
  let ns: Namespace | undefined;
  beforeAll(async () => {
    svc = await startTestService({}, { host: '0.0.0.0' });
    port = Number(new URL(svc.url).port);
  });
  afterAll(async () => {
    await ns?.remove();
    await svc.close();
  });

  test('When a client connects from a non-loopback address (inside a network namespace), then it gets a 403 problem saying how to set API_KEYS', async () => {
    ns = await createNamespace();
    const res = await ns.get(`http://${ns.hostAddress}:${port}/container_registry/b3c38f52-8f2e-43a3-9aa9-bd9a4c75e509`);
    expect(res.status).toBe(403);
    expect(res.type).toMatch(/application\/problem\+json/);
    expect(res.body.detail).toMatch(/protected mode/);
    expect(res.body.detail).toMatch(/API_KEYS=/);
    // The unauthenticated operations routes stay open, so probes and tooling keep working.
    expect((await ns.get(`http://${ns.hostAddress}:${port}/healthz`)).status).toBe(200);
  });

  test('When a loopback client calls, then it is served', async () => {
    expect((await getLocal(port, '/container_registry/b3c38f52-8f2e-43a3-9aa9-bd9a4c75e509')).status).toBe(404);
    expect((await call(svc.url, 'POST', '/container_registries', {})).status).toBe(200);
  });

  test('When a loopback client claims to forward for a remote one (X-Forwarded-For), then it is refused', async () => {
    const res = await getLocal(port, '/container_registries', { 'X-Forwarded-For': '203.0.113.9' });
    expect(res.status).toBe(403);
  });

  test('When the service starts in protected mode, then nothing but loopback is trusted and the mode is known', () => {
    expect(svc.parts.access.protectedMode).toBe(true);
  });
});

describe('Protected mode against DNS rebinding and cross-origin writes', () => {
  let svc: TestService;
  let port: number;
  beforeAll(async () => {
    svc = await startTestService({ PROTECTED_MODE_HOSTS: 'registry-box.internal' });
    port = Number(new URL(svc.url).port);
  });
  afterAll(() => svc.close());

  test('When a loopback client addresses the service by a name that is not a loopback one (a rebound page), then it is refused with a 403 explaining why; /healthz stays open', async () => {
    const host = `rebind.attacker.test:${port}`;
    const who = await getLocal(port, '/whoami', { Host: host });
    expect(who.status).toBe(403);
    expect(who.type).toMatch(/application\/problem\+json/);
    expect(who.body.detail).toMatch(/DNS rebinding/);
    expect(who.body.detail).toContain(host);
    expect(who.body.errors).toEqual([{ path: 'Host', message: expect.any(String) }]);
    const hook = await getLocal(port, '/webhooks', { Host: host }, 'POST', JSON.stringify({ url: 'http://127.0.0.1:9/x', events: ['registry.created'] }));
    expect(hook.status).toBe(403);
    expect((await call(svc.url, 'GET', '/webhooks')).body.webhooks).toEqual([]);
    expect((await getLocal(port, '/healthz', { Host: host })).status).toBe(200);
  });

  test.each(['localhost', '127.0.0.1', '127.1.2.3', '[::1]', 'LOCALHOST', 'localhost.', 'registry-box.internal'])('When the Host is %s, then the request is served', async (name) => {
    const res = await getLocal(port, '/whoami', { Host: `${name}:${port}` });
    expect(res.status).toBe(200);
  });

  test.each(['127.0.0.1.attacker.test', 'localhost.attacker.test', 'attacker.test', '10.0.0.1', 'user@localhost'])('When the Host is %s, then the request is refused', async (name) => {
    expect((await getLocal(port, '/whoami', { Host: `${name}:${port}` })).status).toBe(403);
  });

  test('When a write comes from a page of another origin (Origin or Sec-Fetch-Site), then it is refused with a 403 naming the header; same-origin writes, reads and clients without these headers are served', async () => {
    const query = JSON.stringify({});
    const post = (headers: Record<string, string>) => getLocal(port, '/container_registries', { Host: `127.0.0.1:${port}`, ...headers }, 'POST', query);
    const foreign = await post({ Origin: 'http://evil.test' });
    expect(foreign.status).toBe(403);
    expect(foreign.body.detail).toMatch(/another origin/);
    expect(foreign.body.errors).toEqual([{ path: 'Origin', message: expect.any(String) }]);
    expect((await post({ Origin: 'null' })).status).toBe(403);
    expect((await post({ Origin: `http://127.0.0.1:${port + 1}` })).status).toBe(403);
    const site = await post({ 'Sec-Fetch-Site': 'cross-site' });
    expect(site.status).toBe(403);
    expect(site.body.errors).toEqual([{ path: 'Sec-Fetch-Site', message: expect.any(String) }]);
    expect((await post({ 'Sec-Fetch-Site': 'same-site' })).status).toBe(403);
    const del = await getLocal(port, '/container_registry/b3c38f52-8f2e-43a3-9aa9-bd9a4c75e509', { Host: `localhost:${port}`, Origin: 'http://evil.test' }, 'DELETE');
    expect(del.status).toBe(403);

    expect((await post({ Origin: `http://127.0.0.1:${port}`, 'Sec-Fetch-Site': 'same-origin' })).status).toBe(200);
    expect((await post({})).status).toBe(200);
    expect((await getLocal(port, '/whoami', { Origin: 'http://evil.test', 'Sec-Fetch-Site': 'cross-site' })).status).toBe(200);
  });
});

describe('The loopback decision on the peer address', () => {
  test.each(['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1', '::FFFF:127.9.9.9'])('When the peer is %s, then it is loopback', (a) => {
    expect(isLoopbackAddress(a)).toBe(true);
    expect(isLoopbackClient(a)).toBe(true);
  });

  test.each(['192.0.2.2', '10.0.0.1', '::ffff:10.0.0.1', 'fd00::2', '::', '0.0.0.0', '128.0.0.1', '', 'localhost'])('When the peer is "%s", then it is not loopback', (a) => {
    expect(isLoopbackClient(a)).toBe(false);
  });

  test('When a loopback peer forwards for a non-loopback client, then the client is not loopback', () => {
    expect(isLoopbackClient('127.0.0.1', '127.0.0.1, 198.51.100.4')).toBe(false);
    expect(isLoopbackClient('127.0.0.1', '127.0.0.1, ::1')).toBe(true);
    expect(isLoopbackClient(undefined)).toBe(false);
  });
});
