/** Pure parsers of the probe client: WWW-Authenticate challenges, Link headers, egress CIDR lists, error codes. */
import { cidrText, parseCidr } from '../../src/lib/cidr';
import fc from 'fast-check';
import { ConfigError, loadConfig } from '../../src/config';
import { parseChallenges, pickChallenge } from '../../src/probe/challenge';
import { createEgressPolicy } from '../../src/probe/egress';
import { classifyError, ProbeError } from '../../src/probe/errors';
import { MAX_LINK_HEADER_CHARS, nextLink } from '../../src/probe/link';
import { apiBase } from '../../src/probe/registry-url';

const cidrs = (...list: string[]) => list.map((c) => parseCidr(c)!);

describe('WWW-Authenticate', () => {
  test('When distribution sends a Basic challenge, then scheme and realm are read', () => {
    expect(parseChallenges('Basic realm="registry-db-test"')).toEqual([{ scheme: 'basic', params: { realm: 'registry-db-test' } }]);
  });

  test('When a Bearer challenge carries realm, service and a scope with commas and spaces, then each parameter is read whole', () => {
    const header = 'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push repository:c:pull"';
    expect(parseChallenges(header)).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push repository:c:pull' } },
    ]);
  });

  test('When several challenges share one header with odd spacing, unquoted values and escaped quotes, then all are read and Bearer is picked', () => {
    const parsed = parseChallenges('Basic realm="say \\"hi\\"" ,  BEARER realm = "http://127.0.0.1:1/t" , service=svc, Negotiate');
    expect(parsed).toEqual([
      { scheme: 'basic', params: { realm: 'say "hi"' } },
      { scheme: 'bearer', params: { realm: 'http://127.0.0.1:1/t', service: 'svc' } },
      { scheme: 'negotiate', params: {} },
    ]);
    expect(pickChallenge(parsed)?.scheme).toBe('bearer');
  });

  test('When Google Artifact Registry sends Bearer without service, then service is simply absent', () => {
    expect(parseChallenges(['Bearer realm="https://gar.example/v2/token"'])[0]?.params).toEqual({ realm: 'https://gar.example/v2/token' });
  });

  test('When any quoted parameter values are formatted into a challenge, then parsing gives them back exactly', () => {
    const value = fc.string({ maxLength: 40 });
    fc.assert(
      fc.property(value, value, value, (realm, service, scope) => {
        const quote = (s: string) => `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`;
        const header = `Bearer realm=${quote(realm)}, service=${quote(service)},scope=${quote(scope)}`;
        expect(parseChallenges(header)).toEqual([{ scheme: 'bearer', params: { realm, service, scope } }]);
      }),
    );
  });

  test('When the header is empty or garbage, then no challenge comes out and nothing throws', () => {
    expect(parseChallenges(undefined)).toEqual([]);
    expect(parseChallenges('')).toEqual([]);
    expect(() => parseChallenges('=,="",,"unterminated')).not.toThrow();
  });
});

describe('Link', () => {
  const base = apiBase('http://127.0.0.1:5000/some/prefix');

  test('When the API base is built from a URL with a path prefix and trailing slashes, then it ends in /prefix/v2/', () => {
    expect(base.toString()).toBe('http://127.0.0.1:5000/some/prefix/v2/');
    expect(apiBase('https://r.example//').toString()).toBe('https://r.example/v2/');
  });

  test('When distribution sends a /v2/ Link, then it is resolved under the API base', () => {
    const url = nextLink('</v2/_catalog?last=b&n=2>; rel="next"', base, new URL('_catalog?n=2', base));
    expect(url?.toString()).toBe('http://127.0.0.1:5000/some/prefix/v2/_catalog?last=b&n=2');
  });

  test('When several links come and only one is next, then that one is used; none or another origin gives null', () => {
    const res = new URL('x/tags/list', base);
    expect(nextLink('<a?x=1>; rel="prev", <b?x=2>; rel=next', base, res)?.toString()).toBe('http://127.0.0.1:5000/some/prefix/v2/x/tags/b?x=2');
    expect(nextLink('<a>; rel="prev"', base, res)).toBeNull();
    expect(nextLink(undefined, base, res)).toBeNull();
    expect(nextLink('<http://127.0.0.9/v2/_catalog>; rel="next"', base, res)).toBeNull();
  });

  test('When rel is unquoted, lists several relations or sits among quoted parameters with commas, then next is still found', () => {
    const res = new URL('x/tags/list', base);
    expect(nextLink('<a>; title="a, b; rel=next", <b>; type="x"; rel="prev next"', base, res)?.pathname).toBe('/some/prefix/v2/x/tags/b');
    expect(nextLink(['<a>; rel=prev', '<c>;REL=NEXT'], base, res)?.pathname).toBe('/some/prefix/v2/x/tags/c');
  });

  test.each([
    ['64,000 <', '<'.repeat(64_000)],
    ['64,000 < after a link', '<a>; rel="prev", ' + '<'.repeat(64_000)],
    ['a link with 30,000 ;', '<a>' + '; '.repeat(30_000) + 'rel="next"'],
    ['30,000 <a>;', '<a>;'.repeat(30_000)],
    ['an unterminated quote', '<a>; rel="' + 'x'.repeat(64_000)],
    ['20,000 empty links', '<>, '.repeat(20_000)],
  ])('When a hostile registry sends a Link header of %s, then it is parsed in linear time (a loose bound: 50 ms)', (_what, header) => {
    const res = new URL('_catalog', base);
    const started = performance.now();
    for (let k = 0; k < 3; k++) nextLink(header, base, res);
    expect((performance.now() - started) / 3).toBeLessThan(50);
  });

  test('When the next link comes after MAX_LINK_HEADER_CHARS characters, then it is not read', () => {
    const res = new URL('_catalog', base);
    const filler = '<a>; rel="prev", '.repeat(Math.ceil(MAX_LINK_HEADER_CHARS / 17));
    expect(nextLink(filler + '<b>; rel="next"', base, res)).toBeNull();
    expect(nextLink('<a>; rel="prev", <b>; rel="next"', base, res)?.pathname).toBe('/some/prefix/v2/b');
  });
});

describe('egress policy', () => {
  test('When an address is in the allowed list and not in the denied list, then it is allowed; denied wins', () => {
    const policy = createEgressPolicy(cidrs('127.0.0.0/8', '::1/128', '10.0.0.0/8'), cidrs('127.0.0.2/32', '10.1.0.0/16'));
    expect(policy.allows('127.0.0.1')).toBe(true);
    expect(policy.allows('127.0.0.2')).toBe(false);
    expect(policy.allows('10.0.0.7')).toBe(true);
    expect(policy.allows('10.1.2.3')).toBe(false);
    expect(policy.allows('::1')).toBe(true);
    expect(policy.allows('::ffff:127.0.0.1')).toBe(true);
    expect(policy.allows('::ffff:127.0.0.2')).toBe(false);
    expect(policy.allows('192.168.1.1')).toBe(false);
    expect(policy.allows('not-an-ip')).toBe(false);
  });

  test('When the defaults apply, then cloud metadata, link-local and multicast are refused and private ranges allowed', () => {
    const config = loadConfig({});
    const policy = createEgressPolicy(config.PROBE_ALLOWED_NETWORKS, config.PROBE_DENIED_NETWORKS);
    for (const denied of ['169.254.169.254', 'fe80::1', '224.0.0.1', '0.0.0.0', 'ff02::1']) expect(policy.allows(denied)).toBe(false);
    for (const allowed of ['10.1.2.3', '192.168.0.10', '172.16.5.5', 'fd00::5']) expect(policy.allows(allowed)).toBe(true);
  });

  test('When a URL names a refused IP literal (v4 or bracketed v6), then checkUrl throws blocked_by_policy', () => {
    const policy = createEgressPolicy(cidrs('127.0.0.1/32'), []);
    expect(() => policy.checkUrl(new URL('http://127.0.0.1:5000/v2/'))).not.toThrow();
    expect(() => policy.checkUrl(new URL('http://127.0.0.2:5000/v2/'))).toThrow(expect.objectContaining({ code: 'blocked_by_policy' }));
    expect(() => policy.checkUrl(new URL('http://[::1]:5000/v2/'))).toThrow(expect.objectContaining({ code: 'blocked_by_policy' }));
  });

  test('When PROBE_ALLOWED_NETWORKS holds something that is not a CIDR, then loading the config fails naming the variable', () => {
    expect(() => loadConfig({ PROBE_ALLOWED_NETWORKS: '10.0.0.0/33' })).toThrow(ConfigError);
    expect(() => loadConfig({ PROBE_DENIED_NETWORKS: 'example.com/8' })).toThrow(/PROBE_DENIED_NETWORKS/);
    expect(loadConfig({ PROBE_ALLOWED_NETWORKS: '127.0.0.1, ::1' }).PROBE_ALLOWED_NETWORKS.map(cidrText)).toEqual(['127.0.0.1/32', '::1/128']);
  });
});

describe('error codes', () => {
  const notTimedOut = { timedOut: () => false };
  const sys = (code: string, message = code) => Object.assign(new Error(message), { code });

  test('When system and undici errors arrive, nested or aggregated, then each maps to its machine-readable code', () => {
    expect(classifyError(sys('ENOTFOUND', 'getaddrinfo ENOTFOUND registry.invalid'), notTimedOut).code).toBe('dns_failure');
    expect(classifyError(sys('UND_ERR_CONNECT_TIMEOUT'), notTimedOut).code).toBe('timeout');
    expect(classifyError(new AggregateError([sys('ECONNREFUSED'), sys('ECONNREFUSED')]), notTimedOut).code).toBe('connection_refused');
    expect(classifyError(Object.assign(new TypeError('fetch failed'), { cause: sys('ECONNRESET') }), notTimedOut).code).toBe('connection_reset');
    expect(classifyError(sys('CERT_HAS_EXPIRED', 'certificate has expired'), notTimedOut).code).toBe('tls_error');
    expect(classifyError(sys('ERR_TLS_CERT_ALTNAME_INVALID'), notTimedOut).code).toBe('tls_error');
    expect(classifyError(new ProbeError('too_many_redirects', 'x'), notTimedOut)).toEqual({ code: 'too_many_redirects', detail: 'x' });
    expect(classifyError(new Error('something odd'), notTimedOut)).toEqual({ code: 'probe_error', detail: 'something odd' });
  });

  test('When the deadline fired, then whatever error surfaced is a timeout', () => {
    expect(classifyError(sys('UND_ERR_ABORTED'), { timedOut: () => true }).code).toBe('timeout');
  });
});
