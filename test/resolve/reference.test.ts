/**
 * The image reference grammar and Docker's normalisation (src/resolve/reference.ts), against
 * distribution/reference itself: test/fixtures/reference-cases.json holds what its ParseNormalizedNamed
 * (v0.6.0, the library Docker and containerd use) answers for each input, written by the Go program in
 * test/fixtures/reference-oracle. Then the rules by name, prefixes, and the schema's copy of the grammar.
 */
import fc from 'fast-check';
import cases from '../fixtures/reference-cases.json';
import entrySchema from '../../schemas/container_registry.schema.json';
import { domainKey, INPUT_MAX, InvalidReferenceError, isHostLike, parsePrefix, parseReference, type ReferenceErrorCode } from '../../src/resolve/reference';

type Case = { in: string; out?: string; domain?: string; path?: string; err?: string };

/** distribution's error → our code. */
function codeOf(err: string): ReferenceErrorCode {
  if (/must be lowercase/.test(err)) return 'uppercase';
  if (/must not be more than 255 characters/.test(err)) return 'name-too-long';
  if (/invalid checksum digest length/.test(err)) return 'digest-invalid-length';
  if (/invalid checksum digest format/.test(err)) return 'digest-invalid-format';
  if (/unsupported digest algorithm/.test(err)) return 'digest-unsupported';
  if (/cannot specify 64-byte hexadecimal/.test(err)) return 'identifier';
  if (err === 'invalid reference format') return 'invalid-format';
  throw new Error(`unmapped error: ${err}`);
}

function errorOf(input: string): InvalidReferenceError | undefined {
  try {
    parseReference(input);
    return undefined;
  } catch (e) {
    if (e instanceof InvalidReferenceError) return e;
    throw e;
  }
}

const short = (s: string) => (s.length > 60 ? `${s.slice(0, 40)}…(${s.length} chars)` : s);

describe('When a reference is parsed, then it gets the answer distribution/reference gives', () => {
  const table = (cases as Case[]).map((c) => [short(c.in) || '(empty)', c] as const);
  test('the table covers every rule', () => {
    expect(table.length).toBeGreaterThan(120);
    expect(table.filter(([, c]) => c.err).length).toBeGreaterThan(40);
  });
  test.each(table)('%s', (_name, c) => {
    if (c.err === undefined) {
      const r = parseReference(c.in);
      expect({ out: r.reference, domain: r.domain, path: r.path }).toEqual({ out: c.out, domain: c.domain ?? '', path: c.path });
      expect(r.name).toBe(r.domain ? `${r.domain}/${r.path}` : r.path);
      return;
    }
    const e = errorOf(c.in);
    expect(e).toBeInstanceOf(InvalidReferenceError);
    // Where we stop earlier than distribution: the empty string, and input over INPUT_MAX (never valid).
    const expected = c.in === '' ? 'empty' : c.in.length > INPUT_MAX ? 'too-long' : codeOf(c.err);
    expect(e!.code).toBe(expected);
  });
});

const HEX = 'e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582';

describe('Normalisation rules, by name', () => {
  test.each([
    ['no registry host → docker.io, one component → library/', 'nginx', 'docker.io/library/nginx'],
    ['tag kept, no :latest added', 'nginx:1.27', 'docker.io/library/nginx:1.27'],
    ['two components without a host → docker.io, no library/', 'bitnami/redis', 'docker.io/bitnami/redis'],
    ['docker.io with one component → library/', 'docker.io/nginx', 'docker.io/library/nginx'],
    ['index.docker.io = docker.io', 'index.docker.io/library/nginx', 'docker.io/library/nginx'],
    ['index.docker.io with one component → library/', 'index.docker.io/nginx:1', 'docker.io/library/nginx:1'],
    ['library/ only on docker.io', 'quay.io/nginx', 'quay.io/nginx'],
    ['localhost is a host', 'localhost/app', 'localhost/app'],
    ['a first component with a port is a host', 'registry:5000/app', 'registry:5000/app'],
    ['a first component with a dot is a host', 'registry.example.com/team/app', 'registry.example.com/team/app'],
    ['an uppercase first component is a host', 'MyHost/app', 'MyHost/app'],
    ['a plain lowercase first component is a Docker Hub namespace', 'registry/app', 'docker.io/registry/app'],
    ['IPv6 host with a port', '[::1]:5000/app:v1', '[::1]:5000/app:v1'],
    ['tag and digest both kept', `gcr.io/org/app:1.0@sha256:${HEX}`, `gcr.io/org/app:1.0@sha256:${HEX}`],
    ['digest alone', `busybox@sha256:${HEX}`, `docker.io/library/busybox@sha256:${HEX}`],
    ['a bare host:port is a Docker Hub image with a tag', 'localhost:5000', 'docker.io/library/localhost:5000'],
  ])('%s: %s → %s', (_rule, input, expected) => {
    expect(parseReference(input).reference).toBe(expected);
  });

  test.each([
    ['uppercase in the repository', 'docker.io/Library/nginx', 'uppercase'],
    ['uppercase in a one-component name', 'Nginx', 'uppercase'],
    ['path over 255 characters after normalisation', 'a'.repeat(248), 'name-too-long'],
    ['tag over 128 characters', `nginx:${'a'.repeat(129)}`, 'invalid-format'],
    ['digest of the wrong length', `nginx@sha256:${HEX.slice(1)}`, 'digest-invalid-length'],
    ['unknown digest algorithm', `nginx@md5:${HEX}`, 'digest-unsupported'],
    ['uppercase digest hex', `nginx@sha256:${HEX.toUpperCase()}`, 'digest-invalid-format'],
    ['IPv6 with a zone', '[fe80::1%eth0]:5000/app', 'invalid-format'],
    ['IPv6 without brackets', 'fc00::1:5000/app', 'invalid-format'],
    ['a bare image id', HEX, 'identifier'],
    ['empty', '', 'empty'],
    ['a URL', 'https://registry.example.com/app', 'invalid-format'],
  ])('%s is refused (%s)', (_rule, input, code) => {
    expect(errorOf(input)?.code).toBe(code);
  });

  test('When a hostile string is parsed, then it is refused quickly (no catastrophic backtracking)', () => {
    const hostile = ['a-'.repeat(500) + '!', 'a.'.repeat(500) + '!', `${'a'.repeat(60)}.`.repeat(16) + '/x!', 'a__'.repeat(330) + '_', `[${':'.repeat(1000)}/`];
    for (const s of hostile) {
      const t0 = performance.now();
      expect(errorOf(s)).toBeInstanceOf(InvalidReferenceError);
      expect(performance.now() - t0).toBeLessThan(50);
    }
  });
});

describe('Prefixes (image prefixes and mirror_of)', () => {
  test.each([
    ['docker.io', 'docker.io', ''],
    ['index.docker.io', 'docker.io', ''],
    ['index.docker.io/library', 'docker.io', 'library'],
    ['docker.io/bitnami', 'docker.io', 'bitnami'],
    ['registry.example.com:5000/team', 'registry.example.com:5000', 'team'],
    ['[::1]:5000', '[::1]:5000', ''],
    ['10.0.0.5:5000/a/b', '10.0.0.5:5000', 'a/b'],
  ])('%s → domain %s, path %s (no library/ added: a prefix names a namespace)', (input, domain, path) => {
    expect(parsePrefix(input)).toEqual({ domain, path, name: path ? `${domain}/${path}` : domain });
  });

  test.each(['', 'host/', 'host//a', 'host/A', 'https://host', 'host:port/x', '[fe80::1%25eth0]', `host/${'a'.repeat(256)}`])('%s is not a prefix', (input) => {
    expect(() => parsePrefix(input)).toThrow(InvalidReferenceError);
  });

  test('When domains are compared, then host names ignore case and IPv6 literals compare canonically', () => {
    expect(domainKey('Registry.Example.COM:5000')).toBe('registry.example.com:5000');
    expect(domainKey('[0:0:0:0:0:0:0:1]:5000')).toBe('[::1]:5000');
    expect(domainKey('[2001:DB8::1]')).toBe('[2001:db8::1]');
  });
});

describe('The schema copy of the prefix grammar (container_registry_config.mirror_of)', () => {
  const pattern = new RegExp(entrySchema.properties.container_registry_config.properties.mirror_of.items.pattern, 'u');
  const accepted = (s: string) => {
    try {
      parsePrefix(s);
    } catch {
      return false;
    }
    return isHostLike(s.split('/')[0]!);
  };

  test.each(['docker.io', 'quay.io/org', 'localhost', 'localhost:5000/x', '[::1]:5000/a', 'Registry/x', 'registry:5000', `h.io/${'a'.repeat(255)}`])('%s is a valid mirror_of', (s) => {
    expect(pattern.test(s)).toBe(true);
    expect(accepted(s)).toBe(true);
  });

  test.each(['nginx', 'library/nginx', 'registry', 'h.io/A', 'h.io//a', `h.io/${'a'.repeat(256)}`, 'localhostx/a', 'http://h.io'])('%s is not a valid mirror_of', (s) => {
    expect(pattern.test(s)).toBe(false);
    expect(accepted(s)).toBe(false);
  });

  test('When generated strings are checked, then the schema pattern and the parser agree on every one', () => {
    const parts = ['a', 'b', 'A', '0', '.', '-', '_', '__', ':', ':5000', '/', '[', ']', '::1', 'localhost', 'docker.io', 'io'];
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...parts), { minLength: 1, maxLength: 10 }), (xs) => {
        const s = xs.join('');
        expect(pattern.test(s)).toBe(accepted(s));
      }),
      { numRuns: 20_000 },
    );
  });
});
