/**
 * The egress policy's defaults (SPEC 6, issue 9 item 4, issue 14 item 8), decided on addresses alone: no
 * unit test here connects anywhere (the lookups resolve numeric forms through getaddrinfo, which sends
 * nothing). The last test runs the service and shows a probe refusing its own port and its database's.
 */
import type { LookupAddress } from 'node:dns';
import { loadConfig } from '../../src/config';
import { createEgressPolicy, embeddedIpv4, type EgressPolicy } from '../../src/probe/egress';
import { entry } from '../support/entries';
import { startFakeServer } from '../support/fake-servers';
import { call, startTestService, type TestService } from '../support/service';

const KEYS = { API_KEYS: 'admin:0123456789abcdef-admin' };
const policyOf = (env: Record<string, string>, localPorts?: Set<number>): EgressPolicy => {
  const config = loadConfig(env);
  return createEgressPolicy(config.PROBE_ALLOWED_NETWORKS, config.PROBE_DENIED_NETWORKS, { localPorts });
};
const lookup = (policy: EgressPolicy, host: string, port?: number): Promise<LookupAddress[] | Error> =>
  new Promise((resolve) => {
    (port === undefined ? policy.lookup : policy.lookupFor(port))(host, { all: true }, (err, addresses) => resolve(err ?? (addresses as LookupAddress[])));
  });

/** Link-local / metadata, in every spelling a URL or a resolver can produce. */
const METADATA = [
  '169.254.169.254',
  '169.254.0.1',
  '::ffff:169.254.169.254',
  '::ffff:a9fe:a9fe',
  '0:0:0:0:0:ffff:a9fe:a9fe',
  '::169.254.169.254', // IPv4-compatible
  '::ffff:0:a9fe:a9fe', // SIIT
  '64:ff9b::a9fe:a9fe', // NAT64
  '64:ff9b::169.254.169.254',
  '64:ff9b:1::a9fe:a9fe', // local-use NAT64
  '2002:a9fe:a9fe::1', // 6to4
  '2001:0:a9fe:a9fe::1', // Teredo server
  '2001:0:4136:e378:8000:63bf:5601:5601', // Teredo client 169.254.169.254 XOR-ed
  'fe80::1',
  'fe80::a9fe:a9fe%eth0',
  'fd00:ec2::254',
  '100.100.100.200',
  '[::ffff:169.254.169.254]',
];
const ALWAYS_DENIED = [...METADATA, '224.0.0.1', '239.255.255.250', 'ff02::1', '0.0.0.0', '0.1.2.3', '255.255.255.255', '::', '::0', '0:0:0:0:0:0:0:0', '2002:e000:1::1', '64:ff9b::e000:1'];
const LOOPBACK = ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '64:ff9b::7f00:1', '2002:7f00:1::1'];
const PUBLIC_AND_PRIVATE = ['10.1.2.3', '192.168.0.10', '172.16.5.5', '100.64.1.1', '8.8.8.8', 'fd00::5', '2001:db8::1', '::ffff:10.0.0.1', '64:ff9b::808:808', '2002:808:808::1'];

describe('When the defaults apply', () => {
  test.each([
    ['protected mode (no API_KEYS)', {}],
    ['API key mode', KEYS],
  ])('in %s, then link-local, metadata, multicast, 0.0.0.0/8 and :: are refused in every spelling', (_mode, env) => {
    const policy = policyOf(env);
    for (const address of ALWAYS_DENIED) expect([address, policy.allows(address)]).toEqual([address, false]);
    for (const address of PUBLIC_AND_PRIVATE) expect([address, policy.allows(address)]).toEqual([address, true]);
  });

  test('then loopback is allowed only in protected mode', () => {
    const open = policyOf({});
    const exposed = policyOf(KEYS);
    for (const address of LOOPBACK) {
      expect([address, open.allows(address)]).toEqual([address, true]);
      expect([address, exposed.allows(address)]).toEqual([address, false]);
    }
  });

  test('then an operator opens a special range only by listing a range inside it, never through 0.0.0.0/0', () => {
    const loopback = policyOf({ ...KEYS, PROBE_ALLOWED_NETWORKS: '0.0.0.0/0,::/0,127.0.0.0/8' });
    expect(loopback.allows('127.0.0.1')).toBe(true);
    expect(loopback.allows('169.254.169.254')).toBe(false);
    const metadata = policyOf({ ...KEYS, PROBE_ALLOWED_NETWORKS: '169.254.169.254/32' });
    expect(metadata.allows('169.254.169.254')).toBe(true);
    expect(metadata.allows('169.254.169.253')).toBe(false);
    expect(metadata.allows('10.0.0.1')).toBe(false);
    // An IPv6 spelling of a refused IPv4 address stays refused even where all of IPv6 is allowed.
    const v6 = policyOf({ ...KEYS, PROBE_ALLOWED_NETWORKS: '::/0,10.0.0.0/8' });
    expect(v6.allows('64:ff9b::a0a:a0a')).toBe(true);
    expect(v6.allows('64:ff9b::808:808')).toBe(false);
    expect(policyOf({ PROBE_DENIED_NETWORKS: '10.0.0.0/8' }).allows('2002:a00:1::1')).toBe(false);
  });
});

test('When an IPv6 address carries an IPv4 address, then it is found in each known form', () => {
  expect(embeddedIpv4('64:ff9b::a9fe:a9fe')).toEqual(['169.254.169.254']);
  expect(embeddedIpv4('2002:a9fe:a9fe::')).toEqual(['169.254.169.254']);
  expect(embeddedIpv4('::ffff:1.2.3.4')).toEqual(['1.2.3.4']);
  expect(embeddedIpv4('2001:0:a9fe:a9fe::')).toContain('169.254.169.254');
  expect(embeddedIpv4('::1')).toEqual([]);
  expect(embeddedIpv4('::')).toEqual([]);
  expect(embeddedIpv4('2001:db8::1')).toEqual([]);
});

test('When a URL spells a refused address in decimal, octal, hex or short form, then checkUrl refuses it', () => {
  const policy = policyOf(KEYS);
  for (const url of ['http://169.254.169.254/', 'http://2852039166/', 'http://0xa9fea9fe/', 'http://0251.0376.0251.0376/', 'http://0xa9.0xfe.0xa9.0xfe/', 'http://169.254.43518/', 'http://[::ffff:169.254.169.254]/', 'http://[64:ff9b::a9fe:a9fe]/', 'http://0/', 'http://[::]:8080/', 'http://127.1/']) {
    expect(() => policy.checkUrl(new URL(url))).toThrow(expect.objectContaining({ code: 'blocked_by_policy' }));
  }
  expect(() => policy.checkUrl(new URL('http://10.0.0.1:5000/'))).not.toThrow();
});

test('When a host name resolves to a refused address (numeric forms through getaddrinfo), then the lookup refuses it', async () => {
  const policy = policyOf(KEYS);
  for (const host of ['2852039166', '0251.0376.0251.0376', '0xa9fea9fe', '169.254.43518', 'localhost']) {
    expect([host, await lookup(policy, host)]).toEqual([host, expect.objectContaining({ code: 'blocked_by_policy' })]);
  }
  expect(await lookup(policy, '10.0.0.1')).toEqual([{ address: '10.0.0.1', family: 4 }]);
});

test('When loopback is allowed, then the ports of the service and of its database are still refused on local addresses', async () => {
  const ports = new Set([8080]);
  const policy = policyOf({}, ports);
  expect(policy.allows('127.0.0.1', 5000)).toBe(true);
  for (const address of ['127.0.0.1', '127.0.0.2', '::1', '::ffff:127.0.0.1']) expect([address, policy.allows(address, 8080)]).toEqual([address, false]);
  expect(policy.allows('10.9.9.9', 8080)).toBe(true); // another machine's 8080
  expect(() => policy.checkUrl(new URL('http://127.0.0.1:8080/v2/'))).toThrow(expect.objectContaining({ code: 'blocked_by_policy' }));
  expect(() => policy.checkUrl(new URL('http://127.0.0.1:5000/v2/'))).not.toThrow();
  expect(await lookup(policy, 'localhost', 8080)).toEqual(expect.objectContaining({ code: 'blocked_by_policy' }));
  expect(await lookup(policy, 'localhost', 5000)).not.toBeInstanceOf(Error);
  // The set is live: the composition root adds the listening port once it is known (PORT=0).
  ports.add(5000);
  expect(policy.allows('127.0.0.1', 5000)).toBe(false);
  expect(policy.protectsPort(5000)).toBe(true);
});

describe('When an entry points at the service itself or at its database', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService({ PROBE_TIMEOUT_MS: '2000' });
  });
  afterAll(() => svc.close());

  test('then the probe is blocked_by_policy although loopback is allowed, and other loopback ports are still reached', async () => {
    const dbPort = new URL(process.env.TEST_MONGODB_URI!).port;
    const ownPort = new URL(svc.url).port;
    const other = await startFakeServer((_req, res) => void res.writeHead(200, { 'Docker-Distribution-API-Version': 'registry/2.0', 'Content-Type': 'application/json' }).end('{}'));
    try {
      for (const [name, url, expected] of [
        ['self', `http://127.0.0.1:${ownPort}`, { status: 'unhealthy', error: 'blocked_by_policy' }],
        ['self-by-name', `http://localhost:${ownPort}`, { status: 'unhealthy', error: 'blocked_by_policy' }],
        ['database', `http://127.0.0.1:${dbPort}`, { status: 'unhealthy', error: 'blocked_by_policy' }],
        ['other', other.url, { status: 'healthy' }],
      ] as const) {
        const created = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_name: `egress-${name}`, container_registry_public_url: url }));
        expect(created.status).toBe(201);
        const checked = await call(svc.url, 'GET', `/check_container_health/${created.body.container_registry_id}`);
        expect([name, checked.body]).toEqual([name, expect.objectContaining(expected)]);
      }
    } finally {
      await other.close();
    }
  });
});
