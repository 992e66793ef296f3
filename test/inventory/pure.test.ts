/**
 * The inventory's pure parts (SPEC 19): the crawl's ordered hand-over of rows, the packed snapshot and its
 * lookups, the presence rules, drift within one answer and over a mirror's inventory, and the parsing of the
 * inventory route's query. No database, no HTTP.
 */
import { randomBytes } from 'node:crypto';
import { InputError } from '../../src/errors';
import { parseInventoryQuery, encodeInventoryCursor } from '../../src/inventory/pages';
import { InventoryIndex } from '../../src/inventory/memory-index';
import { SnapshotBuilder, type InventorySnapshot } from '../../src/inventory/snapshot';
import { MemoryBudget } from '../../src/lib/memory-budget';
import { OrderedRows } from '../../src/probe/ordered-rows';
import type { InventoryRow } from '../../src/probe/types';
import { hasPlatform, markDrift, mirrorDrift, PrefixIndex, presenceOf, type ApiEntry, type Candidate } from '../../src/resolve';

const digest = () => `sha256:${randomBytes(32).toString('hex')}`;
const row = (repository: string, tag: string, d: string | null = digest(), media_type: string | null = 'application/vnd.oci.image.manifest.v1+json', platforms: string[] | null = null): InventoryRow => ({ repository, tag, digest: d, media_type, platforms });

function snapshotOf(rows: InventoryRow[], meta: Partial<{ registryId: string; truncated: boolean; observedAt: string }> = {}): InventorySnapshot {
  const b = new SnapshotBuilder({ registryId: meta.registryId ?? 'r1', generation: 1, observedAt: meta.observedAt ?? '2026-12-01T00:00:00.000Z', truncated: meta.truncated ?? false }, 2);
  for (const r of rows) b.add(r);
  return b.build();
}

describe('OrderedRows', () => {
  test('When repositories are crawled side by side at random paces, then the sink gets every row once, in repository order, in batches of at most the batch size', async () => {
    const batches: InventoryRow[][] = [];
    const out = new OrderedRows({ add: async (rows) => void batches.push(rows) }, 7, 15);
    const repos = Array.from({ length: 30 }, (_, i) => Array.from({ length: (i * 7) % 11 }, (_, t) => row(`repo${String(i).padStart(2, '0')}`, `t${String(t).padStart(2, '0')}`)));
    let next = 0;
    const worker = async () => {
      while (next < repos.length) {
        const i = next++;
        try {
          for (const r of repos[i]!) {
            await new Promise((res) => setTimeout(res, Math.random() * 3));
            await out.add(i, r);
          }
        } finally {
          await out.done(i);
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    await out.finish();
    expect(batches.flat()).toEqual(repos.flat());
    expect(batches.every((b) => b.length <= 7)).toBe(true);
    expect(out.written).toBe(repos.flat().length);
  });

  test('When the sink fails, then no later row is written, the failure is kept, and waiting workers are let go', async () => {
    let calls = 0;
    const sink = {
      add: async () => {
        if (calls++ > 0) throw new Error('db down');
      },
    };
    const out = new OrderedRows(sink, 2, 1);
    for (let i = 0; i < 6; i++) await out.add(0, row('a', `t${i}`));
    // A later repository's rows would wait for the head: the failure lets them go.
    await out.add(1, row('b', 'x'));
    await out.done(0);
    await out.done(1);
    await out.finish();
    expect(String(out.failure)).toContain('db down');
    expect(out.written).toBe(2);
  });
});

describe('InventorySnapshot', () => {
  const index = row('multi', 'v1', digest(), 'application/vnd.oci.image.index.v1+json', ['linux/amd64', 'linux/arm64/v8']);
  const rows = [row('a/b', '1'), row('a/b', 'latest'), row('a/b-c', '1'), row('a/bc', '2'), index, row('odd', 'x', `sha512:${'ab'.repeat(64)}`), row('unread', 'y', null, null)];
  const snap = snapshotOf(rows);

  test('When rows are packed, then each comes back as it went in, and lookups find tags, repositories and digests', () => {
    expect(Array.from({ length: snap.rows }, (_, i) => snap.row(i))).toEqual(rows);
    expect(snap.tag('a/b', 'latest')).toEqual({ digest: rows[1]!.digest, media_type: rows[1]!.media_type, platforms: null });
    expect(snap.tag('a/b', 'nope')).toBeUndefined();
    expect(snap.tag('a', 'b')).toBeUndefined();
    expect(snap.hasRepository('a/b')).toBe(true);
    expect(snap.hasRepository('a')).toBe(false);
    expect(snap.repositoryRange('a/b')).toEqual([0, 2]);
    expect(snap.withDigest('a/b', rows[1]!.digest!)?.digest).toBe(rows[1]!.digest);
    // The digest of another repository's tag is not this one's.
    expect(snap.withDigest('a/b', rows[2]!.digest!)).toBeUndefined();
    expect(snap.withDigest('odd', rows[5]!.digest!)?.digest).toBe(rows[5]!.digest);
    expect(snap.tag('multi', 'v1')?.platforms).toEqual(['linux/amd64', 'linux/arm64/v8']);
    expect(snap.tag('unread', 'y')).toEqual({ digest: null, media_type: null, platforms: null });
  });

  test('When 100,000 tags are packed, then they take about 90 bytes each and a lookup stays a binary search', () => {
    const many: InventoryRow[] = [];
    for (let r = 0; r < 1000; r++) for (let t = 0; t < 100; t++) many.push(row(`team${String(r).padStart(4, '0')}/app`, `v${String(t).padStart(3, '0')}`));
    const big = snapshotOf(many);
    expect(big.rows).toBe(100_000);
    expect(big.bytes / big.rows).toBeLessThan(110);
    expect(big.tag('team0500/app', 'v050')?.digest).toBe(many[50_050]!.digest);
    expect(big.withDigest('team0999/app', many[99_999]!.digest!)?.digest).toBe(many[99_999]!.digest);
  });

  test('When the memory index is over its budget, then a snapshot is refused room and the room of one dropped comes back', () => {
    const idx = new InventoryIndex(new MemoryBudget(snap.bytes + 10));
    idx.put(snap, 0);
    expect(idx.budget.used).toBe(snap.bytes);
    expect(idx.reserve(snap.bytes)).toBe(false);
    idx.drop('r1', true);
    expect(idx.budget.used).toBe(0);
    expect(idx.leftOut.has('r1')).toBe(true);
    expect(idx.inventoryOf('r1')).toBeUndefined();
  });
});

describe('presence', () => {
  const idx = row('multi', 'v1', digest(), 'application/vnd.oci.image.index.v1+json', ['linux/amd64', 'linux/arm64/v8']);
  const img = row('team/app', '1.0');
  const latest = row('team/app', 'latest');
  const complete = snapshotOf([idx, img, latest], { observedAt: '2026-12-02T00:00:00.000Z' });
  const truncated = snapshotOf([img], { truncated: true });

  test.each([
    ['no inventory', undefined, { repository: 'team/app', tag: '1.0' }, null],
    ['a listed tag', complete, { repository: 'team/app', tag: '1.0' }, true],
    ['no tag: latest', complete, { repository: 'team/app' }, true],
    ['an unlisted tag, complete', complete, { repository: 'team/app', tag: '2.0' }, false],
    ['an unlisted tag, truncated', truncated, { repository: 'team/app', tag: '2.0' }, null],
    ['a digest some tag has', complete, { repository: 'team/app', digest: img.digest! }, true],
    ['another digest of a held repository', complete, { repository: 'team/app', digest: digest() }, null],
    ['a digest of a repository not held, complete', complete, { repository: 'other/app', digest: digest() }, false],
    ['a platform the index has', complete, { repository: 'multi', tag: 'v1', platform: 'linux/amd64' }, true],
    ['arm64 = arm64/v8', complete, { repository: 'multi', tag: 'v1', platform: 'linux/arm64' }, true],
    ['a platform the index lacks', complete, { repository: 'multi', tag: 'v1', platform: 'linux/s390x' }, false],
    ['a platform of an image manifest', complete, { repository: 'team/app', tag: '1.0', platform: 'linux/amd64' }, null],
  ] as const)('%s → present %p', (_what, inv, wanted, present) => {
    const p = presenceOf(inv, wanted);
    expect(p.present).toBe(present);
    expect(p.source).toBe('inventory');
    expect(p.observed_at).toBe(inv ? inv.observedAt : null);
  });

  test('When present, then digest and platforms come with it; a platform test keeps the digest even when absent', () => {
    expect(presenceOf(complete, { repository: 'multi', tag: 'v1', platform: 'windows/amd64' })).toEqual({ present: false, digest: idx.digest, platforms: idx.platforms, observed_at: '2026-12-02T00:00:00.000Z', source: 'inventory' });
    expect(hasPlatform(['linux/arm/v7'], 'linux/arm')).toBe(true);
    expect(hasPlatform(['linux/arm/v7'], 'linux/arm/v6')).toBe(false);
    expect(hasPlatform(null, 'linux/arm')).toBeNull();
  });
});

describe('drift', () => {
  const cand = (id: string, match: 'prefix' | 'mirror', prefix: string, d: string | null, present: boolean | null = d !== null): Candidate => ({
    container_registry_id: id,
    container_registry_name: id,
    pull_reference: 'x',
    match,
    prefix,
    status: 'healthy',
    origin: null,
    present,
    digest: d,
    platforms: null,
    observed_at: `2026-12-0${id.length}T00:00:00.000Z`,
    source: 'inventory',
  });

  test('When a mirror holds another digest than the origin, then both carry drift; an equal or unknown mirror does not', () => {
    const [a, b] = [digest(), digest()];
    const list = [cand('m1', 'mirror', 'o.io', b), cand('m22', 'mirror', 'o.io', a), cand('m333', 'mirror', 'o.io', null), cand('o4444', 'prefix', 'o.io', a)];
    markDrift(list);
    expect(list[0]!.drift).toEqual({ origin_digest: a, mirror_digest: b, observed_at: '2026-12-05T00:00:00.000Z' });
    expect(list[3]!.drift).toEqual(list[0]!.drift);
    expect(list[1]!.drift).toBeUndefined();
    expect(list[2]!.drift).toBeUndefined();
  });

  test('When the origin is not known to hold the tag, then there is no drift', () => {
    const list = [cand('m1', 'mirror', 'o.io', digest()), cand('o2', 'prefix', 'o.io', null)];
    markDrift(list);
    expect(list.some((c) => c.drift)).toBe(false);
  });

  test("When a mirror's whole inventory is compared, then each tag is compared with the same tag of the registry owning the mirrored name", () => {
    const index = new PrefixIndex();
    const entries: ApiEntry[] = [
      { container_registry_id: 'origin', container_registry_name: 'origin', container_registry_image_prefix: 'origin.io:5000' },
      { container_registry_id: 'mirror', container_registry_name: 'mirror', container_registry_image_prefix: 'cache.io/hub', container_registry_config: { mirror_of: ['origin.io:5000'] } },
    ];
    index.reset(entries);
    const same = digest();
    const theirs = digest();
    const ours = digest();
    const inventories = new InventoryIndex(new MemoryBudget(1 << 30));
    inventories.put(snapshotOf([row('team/app', '1.0', same), row('team/app', '1.1', theirs), row('team/app', '2.0')], { registryId: 'origin', observedAt: '2026-12-05T00:00:00.000Z' }), 0);
    // The mirror's image prefix has a path: its repositories carry it.
    inventories.put(snapshotOf([row('hub/team/app', '1.0', same), row('hub/team/app', '1.1', ours), row('hub/team/app', 'only-here'), row('elsewhere/x', '1')], { registryId: 'mirror', observedAt: '2026-12-06T00:00:00.000Z' }), 0);
    expect(mirrorDrift(index, inventories, 'mirror')).toEqual({
      items: [{ repository: 'hub/team/app', tag: '1.1', origin_registry_id: 'origin', origin_digest: theirs, mirror_digest: ours }],
      observedAt: '2026-12-06T00:00:00.000Z',
    });
    expect(mirrorDrift(index, inventories, 'origin')).toBeNull();
    inventories.drop('mirror');
    expect(mirrorDrift(index, inventories, 'mirror')).toBeNull();
  });
});

describe('GET /container_registry/:id/inventory query', () => {
  const bad = (query: Record<string, unknown>): string[] => {
    try {
      parseInventoryQuery(query);
    } catch (e) {
      if (e instanceof InputError) return (e.errors ?? []).map((x) => x.path);
      throw e;
    }
    return [];
  };

  test('When the query is valid, then it is parsed with the cursor decoded', () => {
    expect(parseInventoryQuery({})).toEqual({ limit: 100 });
    expect(parseInventoryQuery({ repository: 'team/app', tag: 'v1.0-rc_1', limit: '1000', cursor: encodeInventoryCursor(['team/app', 'v1']) })).toEqual({ repository: 'team/app', tag: 'v1.0-rc_1', limit: 1000, after: ['team/app', 'v1'] });
  });

  test.each([
    [{ repository: 'Team/App' }, ['repository']],
    [{ repository: 'a//b' }, ['repository']],
    [{ tag: '-x' }, ['tag']],
    [{ tag: 'a'.repeat(129) }, ['tag']],
    [{ repository: 'UP', tag: '.x' }, ['repository', 'tag']],
    [{ limit: '0' }, ['limit']],
    [{ limit: '1001' }, ['limit']],
    [{ cursor: 'not a cursor' }, ['cursor']],
    [{ cursor: Buffer.from('{"a":1}').toString('base64url') }, ['cursor']],
    [{ repository: ['a', 'b'] }, ['repository']],
    [{ sort: 'tag' }, ['sort']],
  ])('%j → 400 naming %j', (query, paths) => {
    expect(bad(query)).toEqual(paths);
  });
});
