/**
 * The renderers of src/nodes, pure: entries in, text out. What each file says for mirrors over plain http
 * and TLS, with paths, for namespaces and for the upstream's own entry; that names in comments cannot break
 * out of them; and that every file is TOML an independent parser reads back as meant (Python's tomllib,
 * TOML 1.0). The real clients (skopeo, containerd) read them in skopeo.test.ts and containerd.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { FeedCatalog, parseUpstream, type FeedChange } from '../../src/nodes';

type Status = 'healthy' | 'degraded' | 'unknown' | 'unhealthy';

function upsert(id: string, name: string, url: string, opts: { prefix?: string; mirror_of?: string[]; status?: Status; config?: Record<string, unknown>; peer?: string } = {}): FeedChange {
  return {
    type: 'upsert',
    container_registry_id: id,
    entry: {
      container_registry_id: id,
      container_registry_name: name,
      container_registry_public_url: url,
      container_registry_image_prefix: opts.prefix ?? new URL(url).host,
      container_registry_config: { ...(opts.mirror_of ? { mirror_of: opts.mirror_of } : {}), ...(opts.config ?? {}) },
      ...(opts.status ? { container_registry_health: { status: opts.status } } : {}),
      ...(opts.peer ? { container_registry_origin: { peer: opts.peer } } : {}),
    },
  };
}

function catalogOf(...changes: FeedChange[]): FeedCatalog {
  const c = new FeedCatalog();
  for (const ch of changes) c.apply(ch);
  return c;
}

/** The file as Python's tomllib reads it (throws on invalid TOML). */
function toml(text: string): any {
  return JSON.parse(execFileSync('python3', ['-c', 'import json, sys, tomllib; print(json.dumps(tomllib.loads(sys.stdin.read())))'], { input: text, encoding: 'utf8' }));
}

const host = (s: string) => {
  const p = parseUpstream(s, { host: true });
  if (!p.ok) throw new Error(p.reason);
  return p.prefix;
};

const PEM = '-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----';

describe('containerd hosts.toml', () => {
  test('When mirrors are over plain http and TLS, with and without a path, then each gets the URL, override_path and TLS keys containerd needs', () => {
    const c = catalogOf(
      upsert('m1', 'plain', 'http://10.0.0.1:5000', { mirror_of: ['docker.io'], status: 'healthy' }),
      upsert('m2', 'tls-with-path', 'https://cache.example.com/', { prefix: 'cache.example.com/hub', mirror_of: ['docker.io'], status: 'healthy', config: { ca_certificate: PEM, insecure_skip_tls_verify: true } }),
      // TLS settings mean nothing over plain http (and would make containerd try https first): left out.
      upsert('m3', 'plain-with-tls-settings', 'http://10.0.0.3:5000', { mirror_of: ['docker.io'], status: 'degraded', config: { ca_certificate: PEM, insecure_skip_tls_verify: true } }),
      upsert('m4', 'proxied', 'https://proxy.example.com/registry', { prefix: 'proxy.example.com', mirror_of: ['docker.io'], status: 'unknown' }),
    );
    const parsed = toml(c.config.hostsToml(host('docker.io'))!);
    expect(parsed).toEqual({
      server: 'https://registry-1.docker.io',
      host: {
        'http://10.0.0.1:5000': { capabilities: ['pull', 'resolve'] },
        'https://cache.example.com/v2/hub': { capabilities: ['pull', 'resolve'], override_path: true, ca: 'ca-m2.crt', skip_verify: true },
        'http://10.0.0.3:5000': { capabilities: ['pull', 'resolve'] },
        // containerd appends /v2 to the public URL's path, as the prober does.
        'https://proxy.example.com/registry': { capabilities: ['pull', 'resolve'] },
      },
    });
    // TOML tables keep no order for a parser; containerd reads them in file order: check it on the text.
    const text = c.config.hostsToml(host('docker.io'))!;
    const order = [...text.matchAll(/^\[host\."([^"]+)"\]$/gm)].map((m) => m[1]);
    expect(order).toEqual(['http://10.0.0.1:5000', 'https://cache.example.com/v2/hub', 'http://10.0.0.3:5000', 'https://proxy.example.com/registry']);
    expect(c.config.containerdTree()).toEqual(new Map([
      ['docker.io/hosts.toml', text],
      ['docker.io/ca-m2.crt', `${PEM}\n`],
    ]));
  });

  test('When the upstream has an entry of its own over TLS with a CA, then it is the server with its CA; a mirror of itself is not listed', () => {
    const c = catalogOf(
      upsert('up', 'upstream', 'https://127.0.0.1:5000', { status: 'healthy', config: { ca_certificate: PEM } }),
      upsert('self', 'itself', 'https://127.0.0.1:5000', { mirror_of: ['127.0.0.1:5000'], status: 'unknown' }),
      upsert('m', 'mirror', 'http://127.0.0.1:5001', { mirror_of: ['127.0.0.1:5000'], status: 'unhealthy' }),
    );
    const text = c.config.hostsToml(host('127.0.0.1:5000'))!;
    expect(toml(text)).toEqual({ server: 'https://127.0.0.1:5000', ca: 'ca-up.crt' });
    expect(text).toContain('# left out, unhealthy: mirror\n');
    expect([...c.config.containerdTree().keys()]).toEqual(['127.0.0.1:5000/hosts.toml', '127.0.0.1:5000/ca-up.crt']);
  });

  test('When a name holds quotes, backslashes and line breaks, then it stays inside its comment', () => {
    const c = catalogOf(upsert('x', 'evil"\n[host."http://attacker:1"]\r\nserver = "x" \\', 'http://10.0.0.9:5000', { mirror_of: ['docker.io'], status: 'healthy' }));
    const text = c.config.hostsToml(host('docker.io'))!;
    expect(toml(text)).toEqual({ server: 'https://registry-1.docker.io', host: { 'http://10.0.0.9:5000': { capabilities: ['pull', 'resolve'] } } });
    expect(toml(c.config.registriesConf()).registry[0].mirror).toEqual([{ location: '10.0.0.9:5000', insecure: true }]);
  });

  test('When a peer id has characters a file name cannot carry, then its CA file name is made safe', () => {
    const c = catalogOf(upsert('eu:2f1c/../x', 'peer-cache', 'https://cache.eu.example.com', { mirror_of: ['docker.io'], status: 'healthy', peer: 'eu', config: { ca_certificate: PEM } }));
    expect([...c.config.containerdTree().keys()]).toEqual(['docker.io/hosts.toml', 'docker.io/ca-eu_2f1c_.._x.crt']);
  });

  test('When only a namespace of a host is mirrored, then the host has no hosts.toml (containerd configures whole hosts)', () => {
    const c = catalogOf(upsert('q', 'quay-org', 'http://10.0.0.5:5000', { mirror_of: ['quay.io/org'], status: 'healthy' }));
    expect(c.config.hostsToml(host('quay.io'))).toBeNull();
    expect(c.config.containerdTree().size).toBe(0);
  });
});

describe('registries.conf', () => {
  test('When a namespace and its host are both mirrored, then the namespace lists its own mirrors and the host’s, with the names rewritten onto each, in /resolve order', () => {
    const c = catalogOf(
      upsert('h', 'host-mirror', 'https://hub.example.com', { prefix: 'hub.example.com/quay', mirror_of: ['quay.io'], status: 'healthy' }),
      upsert('o', 'org-mirror', 'http://10.0.0.7:5000', { prefix: '10.0.0.7:5000/cache', mirror_of: ['Quay.io/org'], status: 'healthy' }),
      upsert('d', 'org-degraded', 'https://d.example.com', { mirror_of: ['quay.io/org'], status: 'degraded' }),
      upsert('origin', 'quay', 'http://10.0.0.8', { prefix: 'quay.io' }),
    );
    const conf = c.config.registriesConf();
    expect(toml(conf)).toEqual({
      registry: [
        { prefix: 'quay.io', location: 'quay.io', insecure: true, mirror: [{ location: 'hub.example.com/quay' }] },
        {
          prefix: 'quay.io/org',
          location: 'quay.io/org',
          insecure: true,
          // healthy before degraded; among the healthy, the deeper match (org) first
          mirror: [{ location: '10.0.0.7:5000/cache', insecure: true }, { location: 'hub.example.com/quay/org' }, { location: 'd.example.com' }],
        },
      ],
    });
  });

  test('When nothing is mirrored, then the file is comments only (valid, empty)', () => {
    expect(toml(new FeedCatalog().config.registriesConf())).toEqual({});
  });

  test('When entries are deleted or stop mirroring, then they leave the files', () => {
    const c = catalogOf(upsert('a', 'a', 'http://10.0.0.1:5000', { mirror_of: ['docker.io'], status: 'healthy' }), upsert('b', 'b', 'http://10.0.0.2:5000', { mirror_of: ['docker.io'], status: 'healthy' }));
    c.apply({ type: 'delete', container_registry_id: 'a' });
    c.apply(upsert('b', 'b', 'http://10.0.0.2:5000', { status: 'healthy' }));
    expect(c.config.hostsToml(host('docker.io'))).toBeNull();
    expect(toml(c.config.registriesConf())).toEqual({});
    c.clear();
    expect(c.size).toBe(0);
  });
});

test('When the feed brings an entry without a string name (malformed), then it leaves the catalog instead of breaking the files', () => {
  const c = catalogOf(upsert('a', 'a', 'http://10.0.0.1:5000', { mirror_of: ['docker.io'], status: 'healthy' }), upsert('b', 'b', 'http://10.0.0.2:5000', { mirror_of: ['docker.io'], status: 'healthy' }));
  const bad = upsert('a', 'a', 'http://10.0.0.1:5000', { mirror_of: ['docker.io'] });
  (bad as unknown as { entry: Record<string, unknown> }).entry.container_registry_name = 42;
  c.apply(bad);
  expect(toml(c.config.hostsToml(host('docker.io'))!)).toEqual({ server: 'https://registry-1.docker.io', host: { 'http://10.0.0.2:5000': { capabilities: ['pull', 'resolve'] } } });
  expect(c.size).toBe(1);
});

describe('Upstream names', () => {
  test.each([
    ['docker.io', 'docker.io'],
    ['index.docker.io', 'docker.io'],
    ['Registry.Example.COM:5000', 'registry.example.com:5000'],
    ['[0:0::1]:5000', '[::1]:5000'],
    ['localhost', 'localhost'],
  ])('When %s is asked for, then the upstream is %s', (given, expected) => {
    expect(host(given).name).toBe(expected);
  });

  test.each([
    ['a path', 'quay.io/org'],
    ['no host', 'nginx'],
    ['spaces', 'not a host'],
    ['nothing', ''],
    ['2,000 characters', 'a'.repeat(2000)],
  ])('When a host with %s is asked for, then it is refused with a reason', (_what, given) => {
    const p = parseUpstream(given, { host: true });
    expect(p.ok).toBe(false);
    if (!p.ok) expect(p.reason.length).toBeGreaterThan(10);
  });
});
