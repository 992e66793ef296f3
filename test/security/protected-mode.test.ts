/**
 * Protected mode (no API_KEYS): loopback clients are served, the others get a 403 problem saying how to set
 * keys. Decided on a real socket: the service listens on 0.0.0.0 and a client connects to 127.0.0.1 from a
 * non-loopback address of this machine (traffic still goes only to 127.0.0.1), so the service sees a
 * non-loopback peer. The address decision itself is also checked at the function that takes the peer address.
 */
import http from 'node:http';
import os from 'node:os';
import { isLoopbackAddress, isLoopbackClient } from '../../src/http/auth';
import { call, startTestService, type TestService } from '../support/service';

/** A non-loopback IPv4 address of this machine, to bind the client's end of the socket to. */
function localNonLoopbackAddress(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal && !a.address.startsWith('169.254.')) return a.address;
  }
  return undefined;
}

/** GET to 127.0.0.1:port with the client socket bound to `localAddress`. */
function getFrom(localAddress: string, port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, localAddress, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('Protected mode on a real socket', () => {
  let svc: TestService;
  let port: number;
  beforeAll(async () => {
    svc = await startTestService({}, { host: '0.0.0.0' });
    port = Number(new URL(svc.url).port);
  });
  afterAll(() => svc.close());

  const remote = localNonLoopbackAddress();
  (remote ? test : test.skip)(`When a client connects from a non-loopback address (${remote ?? 'none on this machine'}), then it gets a 403 problem saying how to set API_KEYS`, async () => {
    const res = await getFrom(remote!, port, '/container_registry/b3c38f52-8f2e-43a3-9aa9-bd9a4c75e509');
    expect(res.status).toBe(403);
    expect(res.type).toMatch(/application\/problem\+json/);
    expect(res.body.detail).toMatch(/protected mode/);
    expect(res.body.detail).toMatch(/API_KEYS=/);
    // The unauthenticated operations routes stay open, so probes and tooling keep working.
    expect((await getFrom(remote!, port, '/healthz')).status).toBe(200);
  });

  test('When a loopback client calls, then it is served', async () => {
    expect((await getFrom('127.0.0.1', port, '/container_registry/b3c38f52-8f2e-43a3-9aa9-bd9a4c75e509')).status).toBe(404);
    expect((await call(svc.url, 'POST', '/container_registries', {})).status).toBe(200);
  });

  test('When a loopback client claims to forward for a remote one (X-Forwarded-For), then it is refused', async () => {
    const res = await getFrom('127.0.0.1', port, '/container_registries', { 'X-Forwarded-For': '203.0.113.9' });
    expect(res.status).toBe(403);
  });

  test('When the service starts in protected mode, then nothing but loopback is trusted and the mode is known', () => {
    expect(svc.parts.access.protectedMode).toBe(true);
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
