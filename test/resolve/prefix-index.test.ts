/**
 * The prefix index (src/resolve/prefix-index.ts): matching on component boundaries, mirrors with prefix
 * rewriting, the order of candidates, and changes applied one at a time. Pure: no database, no HTTP.
 */
import { MAX_CANDIDATES, PrefixIndex, type ApiEntry } from '../../src/resolve/prefix-index';

type Status = 'healthy' | 'degraded' | 'unknown' | 'unhealthy';

function entry(name: string, prefix: string, opts: { mirror_of?: string[]; status?: Status; tags?: string[]; peer?: string; id?: string } = {}): ApiEntry {
  return {
    container_registry_id: opts.id ?? `id-${name}`,
    container_registry_name: name,
    container_registry_image_prefix: prefix,
    container_registry_config: opts.mirror_of ? { mirror_of: opts.mirror_of } : {},
    ...(opts.status ? { container_registry_health: { status: opts.status } } : {}),
    container_registry_tags: opts.tags ?? [],
    ...(opts.peer ? { container_registry_origin: { peer: opts.peer } } : {}),
  };
}

function indexOf(...entries: ApiEntry[]): PrefixIndex {
  const index = new PrefixIndex();
  index.reset(entries);
  return index;
}

/** name → pull reference, best first. */
const order = (index: PrefixIndex, ref: string, prefer?: string[]) => index.resolve(ref, { prefer }).candidates.map((c) => [c.container_registry_name, c.pull_reference]);

describe('Matching', () => {
  const index = indexOf(
    entry('hub', 'docker.io', { status: 'healthy' }),
    entry('hub-mirror', 'mirror.local:5000', { mirror_of: ['docker.io'], status: 'healthy' }),
    entry('quay-org-cache', 'cache.local/quay', { mirror_of: ['quay.io/org'], status: 'healthy' }),
    entry('team', 'registry.example.com/team', { status: 'healthy' }),
    entry('host', 'registry.example.com', { status: 'healthy' }),
  );

  test.each([
    ['nginx', [['hub-mirror', 'mirror.local:5000/library/nginx'], ['hub', 'docker.io/library/nginx']]],
    ['index.docker.io/bitnami/redis:7', [['hub-mirror', 'mirror.local:5000/bitnami/redis:7'], ['hub', 'docker.io/bitnami/redis:7']]],
    ['quay.io/org/app:1.2', [['quay-org-cache', 'cache.local/quay/app:1.2']]],
    ['quay.io/org/team/app', [['quay-org-cache', 'cache.local/quay/team/app']]],
    ['quay.io/orgx/app', []],
    ['quay.io/other/app', []],
    ['registry.example.com/team/app', [['team', 'registry.example.com/team/app'], ['host', 'registry.example.com/team/app']]],
    ['registry.example.com/teamx/app', [['host', 'registry.example.com/teamx/app']]],
    ['registry.example.com/team', [['team', 'registry.example.com/team'], ['host', 'registry.example.com/team']]],
    ['Registry.Example.com/team/app', [['team', 'Registry.Example.com/team/app'], ['host', 'Registry.Example.com/team/app']]],
    ['registry.example.com:443/team/app', []],
    ['ghcr.io/owner/app', []],
  ])('%s → %j', (ref, expected) => {
    expect(order(index, ref)).toEqual(expected);
  });

  test('When a mirror matches, then the candidate names the mirrored prefix and keeps tag and digest', () => {
    const digest = `sha256:${'ab'.repeat(32)}`;
    const r = index.resolve(`nginx:1.27@${digest}`);
    expect(r.image).toBe(`docker.io/library/nginx:1.27@${digest}`);
    expect(r.candidates[0]).toEqual({
      container_registry_id: 'id-hub-mirror',
      container_registry_name: 'hub-mirror',
      pull_reference: `mirror.local:5000/library/nginx:1.27@${digest}`,
      match: 'mirror',
      prefix: 'docker.io',
      status: 'healthy',
      origin: null,
      // No inventory given: nothing is known of what it holds (SPEC 19).
      present: null,
      digest: null,
      platforms: null,
      observed_at: null,
      source: 'inventory',
    });
    expect(r.candidates[1]).toMatchObject({ match: 'prefix', prefix: 'docker.io', pull_reference: `docker.io/library/nginx:1.27@${digest}` });
  });

  test('When prefixes are written differently, then they are normalised like references', () => {
    const idx = indexOf(
      entry('legacy-hub', 'index.docker.io', { status: 'healthy' }),
      entry('v6', '[0:0:0:0:0:0:0:1]:5000/apps', { status: 'healthy' }),
      entry('legacy-mirror', 'm.local', { mirror_of: ['index.docker.io/library'], status: 'healthy' }),
      entry('upper', 'LocalRegistry:5000', { status: 'healthy' }),
    );
    expect(order(idx, 'nginx')).toEqual([['legacy-mirror', 'm.local/nginx'], ['legacy-hub', 'docker.io/library/nginx']]);
    expect(order(idx, '[::1]:5000/apps/web:1')).toEqual([['v6', '[::1]:5000/apps/web:1']]);
    expect(order(idx, 'localregistry:5000/x')).toEqual([['upper', 'localregistry:5000/x']]);
  });

  test('When an entry matches both by its prefix and as a mirror, then it appears once, as the mirror', () => {
    const idx = indexOf(entry('both', 'hub.local', { mirror_of: ['hub.local/upstream'], status: 'healthy' }));
    expect(idx.resolve('hub.local/upstream/app').candidates).toEqual([expect.objectContaining({ match: 'mirror', pull_reference: 'hub.local/app', prefix: 'hub.local/upstream' })]);
  });

  test('When a mirror of a whole repository has a bare host as its prefix, then it is skipped (no valid reference to pull)', () => {
    const idx = indexOf(entry('odd', 'bare.local', { mirror_of: ['quay.io/org/app'], status: 'healthy' }), entry('deep', 'deep.local/cache', { mirror_of: ['quay.io/org/app'], status: 'healthy' }));
    expect(order(idx, 'quay.io/org/app:1')).toEqual([['deep', 'deep.local/cache:1']]);
  });

  test('When an entry has an invalid image prefix or invalid mirror_of items, then those never match and the rest still do', () => {
    const idx = indexOf(entry('bad', 'host.io//x', { mirror_of: ['docker.io'], status: 'healthy' }), entry('half', 'half.local', { mirror_of: ['not a prefix', 'quay.io'], status: 'healthy' }));
    expect(order(idx, 'nginx')).toEqual([]);
    expect(order(idx, 'quay.io/a/b')).toEqual([['half', 'half.local/a/b']]);
    expect(idx.size).toBe(2);
  });

  test('When an entry comes from a peer or was never probed, then the candidate says so', () => {
    const idx = indexOf(entry('peer-one', 'p.example.com', { peer: 'cluster-b' }));
    expect(idx.resolve('p.example.com/a').candidates[0]).toMatchObject({ origin: 'cluster-b', status: 'unknown' });
  });

  test('When the reference is invalid, then resolve throws the typed error', () => {
    expect(() => indexOf().resolve('Nginx')).toThrow(expect.objectContaining({ name: 'InvalidReferenceError', code: 'uppercase' }));
  });
});

describe('Ordering', () => {
  test('healthy > degraded > unknown > unhealthy, whatever the prefix length or kind', () => {
    const idx = indexOf(
      entry('a-unhealthy-deep', 'r.io/team/app', { status: 'unhealthy' }),
      entry('b-unknown-mirror', 'm.io', { mirror_of: ['r.io/team'] }),
      entry('c-degraded', 'r.io/team', { status: 'degraded' }),
      entry('d-healthy-short', 'r.io', { status: 'healthy' }),
    );
    expect(order(idx, 'r.io/team/app').map(([n]) => n)).toEqual(['d-healthy-short', 'c-degraded', 'b-unknown-mirror', 'a-unhealthy-deep']);
  });

  test('When an unhealthy entry has the longer prefix, then the healthy shorter one comes first', () => {
    const idx = indexOf(entry('team', 'r.io/team', { status: 'unhealthy' }), entry('host', 'r.io', { status: 'healthy' }));
    expect(order(idx, 'r.io/team/app').map(([n]) => n)).toEqual(['host', 'team']);
  });

  test('Among equals: mirrors before the origin, then longer prefixes first', () => {
    const idx = indexOf(
      entry('origin-deep', 'r.io/team', { status: 'healthy' }),
      entry('origin', 'r.io', { status: 'healthy' }),
      entry('mirror-short', 'm1.io', { mirror_of: ['r.io'], status: 'healthy' }),
      entry('mirror-deep', 'm2.io', { mirror_of: ['r.io/team'], status: 'healthy' }),
    );
    expect(order(idx, 'r.io/team/app')).toEqual([
      ['mirror-deep', 'm2.io/app'],
      ['mirror-short', 'm1.io/team/app'],
      ['origin-deep', 'r.io/team/app'],
      ['origin', 'r.io/team/app'],
    ]);
  });

  test('When candidates tie, then prefer decides (earlier preferred tags first), then name, then id', () => {
    const idx = indexOf(
      entry('mirror-eu', 'eu.local', { mirror_of: ['docker.io'], status: 'healthy', tags: ['eu', 'gpu'] }),
      entry('mirror-us', 'us.local', { mirror_of: ['docker.io'], status: 'healthy', tags: ['us'] }),
      entry('mirror-asia', 'asia.local', { mirror_of: ['docker.io'], status: 'healthy', tags: ['asia'] }),
    );
    const names = (prefer?: string[]) => order(idx, 'nginx', prefer).map(([n]) => n);
    expect(names()).toEqual(['mirror-asia', 'mirror-eu', 'mirror-us']);
    expect(names(['us'])).toEqual(['mirror-us', 'mirror-asia', 'mirror-eu']);
    expect(names(['gpu', 'us'])).toEqual(['mirror-eu', 'mirror-us', 'mirror-asia']);
    expect(names(['us', 'gpu'])).toEqual(['mirror-us', 'mirror-eu', 'mirror-asia']);
    expect(names(['nothing'])).toEqual(['mirror-asia', 'mirror-eu', 'mirror-us']);
    // prefer never beats health or prefix length
    idx.apply({ type: 'upsert', entry: entry('mirror-us', 'us.local', { mirror_of: ['docker.io'], status: 'degraded', tags: ['us'] }) });
    expect(names(['us'])).toEqual(['mirror-asia', 'mirror-eu', 'mirror-us']);
  });

  test('When two entries share name-independent keys, then the order is stable by name then id', () => {
    const idx = indexOf(entry('same', 'a.io', { id: 'id-2', status: 'healthy' }), entry('same', 'a.io', { id: 'id-1', status: 'healthy' }));
    expect(idx.resolve('a.io/x').candidates.map((c) => c.container_registry_id)).toEqual(['id-1', 'id-2']);
  });
});

describe('Bounds', () => {
  test('When more than MAX_CANDIDATES entries serve an image, then the best MAX_CANDIDATES come in order, with truncated: true', () => {
    // 300 mirrors of docker.io with pseudo-random health, tags and names (a fixed seed); ties on name go by id.
    const statuses: Status[] = ['healthy', 'degraded', 'unknown', 'unhealthy'];
    let seed = 7;
    const next = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    const mirrors = Array.from({ length: 300 }, (_, i) =>
      entry(`m-${next(40)}`, `m${i}.local`, { id: `id-${String(i).padStart(3, '0')}`, mirror_of: ['docker.io'], status: statuses[next(4)], tags: next(3) === 0 ? ['eu'] : [] }),
    );
    const idx = indexOf(...mirrors);
    const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
    // The documented order among mirrors of one prefix: health, then a preferred tag, then name, then id.
    const rank = (e: ApiEntry, prefer: string[]) => [statuses.indexOf(e.container_registry_health!.status as Status), e.container_registry_tags!.some((t) => prefer.includes(t)) ? 0 : 1];
    for (const prefer of [[], ['eu']]) {
      const expected = [...mirrors]
        .sort((a, b) => {
          const [ra, rb] = [rank(a, prefer), rank(b, prefer)];
          return ra[0]! - rb[0]! || ra[1]! - rb[1]! || byCodeUnits(a.container_registry_name, b.container_registry_name) || byCodeUnits(a.container_registry_id, b.container_registry_id);
        })
        .slice(0, MAX_CANDIDATES)
        .map((e) => e.container_registry_id);
      const result = idx.resolve('nginx:1.27', { prefer });
      expect(result.truncated).toBe(true);
      expect(result.candidates.map((c) => c.container_registry_id)).toEqual(expected);
    }
  });

  test('When MAX_CANDIDATES entries or fewer serve an image, then all come and there is no truncated flag', () => {
    const idx = indexOf(...Array.from({ length: MAX_CANDIDATES }, (_, i) => entry(`m-${i}`, `m${i}.local`, { mirror_of: ['docker.io'] })));
    const result = idx.resolve('nginx');
    expect(result.candidates).toHaveLength(MAX_CANDIDATES);
    expect(result).not.toHaveProperty('truncated');
  });
});

describe('Changes', () => {
  test('When entries are upserted and deleted, then the answer follows', () => {
    const idx = indexOf(entry('hub', 'docker.io', { status: 'healthy' }));
    expect(order(idx, 'nginx').map(([n]) => n)).toEqual(['hub']);

    idx.apply({ type: 'upsert', entry: entry('mirror', 'mirror.local', { mirror_of: ['docker.io'], status: 'healthy' }) });
    expect(order(idx, 'nginx').map(([n]) => n)).toEqual(['mirror', 'hub']);

    // the mirror goes down: it sorts after the healthy origin
    idx.apply({ type: 'upsert', entry: entry('mirror', 'mirror.local', { mirror_of: ['docker.io'], status: 'unhealthy' }) });
    expect(order(idx, 'nginx').map(([n]) => n)).toEqual(['hub', 'mirror']);

    // it stops mirroring Docker Hub and mirrors quay.io instead
    idx.apply({ type: 'upsert', entry: entry('mirror', 'mirror.local', { mirror_of: ['quay.io'], status: 'healthy' }) });
    expect(order(idx, 'nginx').map(([n]) => n)).toEqual(['hub']);
    expect(order(idx, 'quay.io/a/b')).toEqual([['mirror', 'mirror.local/a/b']]);

    // the origin moves to another prefix
    idx.apply({ type: 'upsert', entry: entry('hub', 'hub.example.com', { status: 'healthy' }) });
    expect(order(idx, 'nginx')).toEqual([]);
    expect(order(idx, 'hub.example.com/x')).toEqual([['hub', 'hub.example.com/x']]);

    idx.apply({ type: 'delete', container_registry_id: 'id-mirror' });
    expect(order(idx, 'quay.io/a/b')).toEqual([]);
    idx.apply({ type: 'delete', container_registry_id: 'id-unknown' });
    expect(idx.size).toBe(1);
  });

  test('When the index is reset, then only the new entries count', () => {
    const idx = indexOf(entry('old', 'old.io', { status: 'healthy' }));
    idx.reset([entry('new', 'new.io', { status: 'healthy' })]);
    expect(order(idx, 'old.io/x')).toEqual([]);
    expect(order(idx, 'new.io/x')).toEqual([['new', 'new.io/x']]);
    expect(idx.size).toBe(1);
  });
});
