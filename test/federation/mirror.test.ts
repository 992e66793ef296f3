/**
 * Federation, the pure rules (src/federation/mirror.ts) and the configuration of peers (src/config.ts):
 * how a peer's page is checked, how its entries are keyed and stored, when a relist is due.
 */
import { ConfigError, loadConfig } from '../../src/config';
import { MAX_PAGE_VALUES, mirroredIdOf, mirrorId, needsRelist, oversizedChange, pageShapeProblem, parseChangePage, PeerAnswerError, storedFromPeer as stored, type Origin } from '../../src/federation/mirror';
import { MAX_BODY_DEPTH } from '../../src/lib/json-shape';
import { nameKey } from '../../src/registries/model';

const origin: Origin = { peer: 'eu', url: 'http://127.0.0.1:1', revision: 7, synced_at: new Date().toISOString(), stale: false };
const peerEntry = {
  container_registry_id: '0c4b1f7e-1f0d-4c7a-9d8e-2b1f6a2d9c11',
  container_registry_name: 'harbor-eu',
  container_registry_public_url: 'https://harbor.eu.example.com',
  container_registry_image_prefix: 'harbor.eu.example.com',
  container_registry_tags: ['eu'],
  container_registry_credentials: { username: 'robot', password_set: true },
  container_registry_storage_info: { registry_type: 'external', observed: { repository_count: 3 } },
  container_registry_health: { status: 'healthy', consecutive_failures: 0 },
  created_at: '2026-01-01T00:00:00.000Z',
  updated_at: '2026-01-02T00:00:00.000Z',
  version: 4,
  revision: 99,
};
const MAX_BYTES = 256 * 1024 + 16 * 1024;
/** storedFromPeer with the entry's own id and the default bound. */
const storedFromPeer = (peer: string, entry: Record<string, unknown>, o: Origin, maxBytes = MAX_BYTES) => stored(peer, entry.container_registry_id as string, entry, o, maxBytes);

test('When a peer entry is keyed, then its id is <peer>:<id>, never a UUID (local ids are), and names are keyed per origin', () => {
  expect(mirrorId('eu', peerEntry.container_registry_id)).toBe(`eu:${peerEntry.container_registry_id}`);
  expect(mirrorId('eu', 'x')).not.toMatch(/^[0-9a-f-]{36}$/);
  expect(nameKey({ container_registry_name: 'a' })).toBe('/a');
  expect(nameKey({ container_registry_name: 'a', container_registry_origin: origin })).toBe('eu/a');
  // A local name that looks like a peer's key still differs from it.
  expect(nameKey({ container_registry_name: 'eu/a' })).not.toBe(nameKey({ container_registry_name: 'a', container_registry_origin: origin }));
});

test('When a peer entry is stored, then it keeps the peer\'s fields, health, times and version, gets the origin, and loses the masked credentials and the peer\'s revision', () => {
  const doc = storedFromPeer('eu', peerEntry, origin) as unknown as Record<string, unknown>;
  expect(doc._id).toBe(`eu:${peerEntry.container_registry_id}`);
  expect(doc.container_registry_name).toBe('harbor-eu');
  expect(doc.container_registry_health).toEqual(peerEntry.container_registry_health);
  expect(doc.version).toBe(4);
  expect(doc.created_at).toBe(peerEntry.created_at);
  expect(doc.container_registry_storage_info).toEqual(peerEntry.container_registry_storage_info);
  expect(doc.container_registry_origin).toEqual(origin);
  expect(doc).not.toHaveProperty('container_registry_credentials');
  expect(doc).not.toHaveProperty('revision');
  expect(doc).not.toHaveProperty('container_registry_id');
});

test('When a peer sends an entry this catalog would refuse from a client, then it is a PeerAnswerError naming the field, and internal fields are never stored', () => {
  expect(() => storedFromPeer('eu', { ...peerEntry, container_registry_public_url: 'not a url' }, origin)).toThrow(/container_registry_public_url/);
  expect(() => storedFromPeer('eu', { ...peerEntry, container_registry_public_url: 'not a url' }, origin)).toThrow(PeerAnswerError);
  expect(() => storedFromPeer('eu', { ...peerEntry, $where: 'x' }, origin)).toThrow(PeerAnswerError);
  expect(() => storedFromPeer('eu', { ...peerEntry, container_registry_id: 5 }, origin)).toThrow(/container_registry_id/);
  expect(() => storedFromPeer('eu', { ...peerEntry, container_registry_origin: origin }, origin)).not.toThrow();
  const doc = storedFromPeer('eu', { ...peerEntry, _name_key: 'forged', _health_swept: 'x' }, origin) as unknown as Record<string, unknown>;
  expect(doc).not.toHaveProperty('_name_key');
  expect(doc).not.toHaveProperty('_health_swept');
});

test('When a peer answers something that is not a change page, then it is a PeerAnswerError', () => {
  expect(parseChangePage('{"revision": 3, "changes": []}')).toEqual({ revision: 3, changes: [] });
  for (const bad of ['', 'not json', '{"revision": "3", "changes": []}', '{"changes": []}', '[]', '{"revision": 1, "changes": [{"type": "upsert"}]}']) {
    expect(() => parseChangePage(bad)).toThrow(PeerAnswerError);
  }
});

test('When a peer answers 410, or 400 naming since (its revisions went backwards), then a relist is due; other answers are errors', () => {
  expect(needsRelist(410, '')).toBe(true);
  expect(needsRelist(400, JSON.stringify({ status: 400, errors: [{ path: 'since', message: 'must not exceed the current revision 2' }] }))).toBe(true);
  expect(needsRelist(400, JSON.stringify({ status: 400, errors: [{ path: 'limit', message: 'x' }] }))).toBe(false);
  expect(needsRelist(400, 'garbage')).toBe(false);
  expect(needsRelist(503, '')).toBe(false);
  expect(needsRelist(200, '')).toBe(false);
});

test('When PEERS and PEER_KEYS are parsed, then names, URLs and keys are checked, and a key never appears in an error', () => {
  const c = loadConfig({ PEERS: 'eu=http://10.0.0.1:8080/, us-2=https://us.example.com', PEER_KEYS: 'eu=0123456789abcdef-secret', PEER_STALE_AFTER_S: '5' });
  expect(c.PEERS).toEqual([
    { name: 'eu', url: 'http://10.0.0.1:8080' },
    { name: 'us-2', url: 'https://us.example.com' },
  ]);
  expect(c.PEER_KEYS.get('eu')).toBe('0123456789abcdef-secret');
  expect(c.PEER_STALE_AFTER_S).toBe(5);
  expect(loadConfig({}).PEERS).toEqual([]);
  expect(loadConfig({}).PEER_STALE_AFTER_S).toBe(60);
  const fails = (env: Record<string, string>) => {
    try {
      loadConfig(env);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as ConfigError).message;
    }
    throw new Error('accepted');
  };
  expect(fails({ PEERS: 'EU=http://x' })).toMatch(/^PEERS: entry 1 must be NAME=URL/);
  expect(fails({ PEERS: 'eu:x=http://x' })).toMatch(/^PEERS:/);
  expect(fails({ PEERS: 'eu=ftp://x' })).toMatch(/^PEERS: entry 1 \(eu\): "ftp:\/\/x" must be an http/);
  expect(fails({ PEERS: 'eu=http://u:p@x' })).toMatch(/credentials/);
  expect(fails({ PEERS: 'eu=http://x,eu=http://y' })).toMatch(/repeats/);
  expect(fails({ PEERS: 'eu=http://x', PEER_KEYS: 'us=0123456789abcdef0' })).toMatch(/^PEER_KEYS: names us, which is not in PEERS/);
  const short = fails({ PEERS: 'eu=http://x', PEER_KEYS: 'eu=short-key' });
  expect(short).toMatch(/^PEER_KEYS: entry 1 \(eu\): needs a key/);
  expect(short).not.toContain('short-key');
  expect(fails({ PEER_STALE_AFTER_S: '0' })).toMatch(/^PEER_STALE_AFTER_S/);
});

test('When a peer sends an id that is not a UUID (a NUL byte, a colon, a path), then it is refused: a mirrored id is always <peer>:<uuid>', () => {
  const uuid = peerEntry.container_registry_id;
  expect(mirroredIdOf('eu', uuid)).toBe(`eu:${uuid}`);
  for (const bad of [`${uuid}\u0000`, `a\u0000b`, `x:${uuid}`, '../etc', '', uuid.slice(1), `${uuid} `, 42, null]) {
    expect(() => mirroredIdOf('eu', bad)).toThrow(PeerAnswerError);
    expect(() => stored('eu', bad as string, peerEntry, origin, MAX_BYTES)).toThrow(/not a UUID/);
  }
});

test('When a peer sends health, storage, times or a version this service would never write, then the entry is refused naming the field', () => {
  const refused: Array<[Record<string, unknown>, RegExp]> = [
    [{ container_registry_health: { status: '<html>oops</html>' } }, /container_registry_health\/status/],
    [{ container_registry_health: { status: 'healthy', $where: 'sleep(1000)' } }, /container_registry_health.*\$where/],
    [{ container_registry_health: { status: 'healthy', detail: 'x'.repeat(5000) } }, /container_registry_health\/detail/],
    [{ container_registry_health: 'healthy' }, /container_registry_health/],
    [{ container_registry_storage_info: { observed: { repository_count: -1 } } }, /observed\/repository_count/],
    [{ container_registry_storage_info: { observed: { extra: 1 } } }, /observed/],
    [{ created_at: 'not-a-date' }, /created_at/],
    [{ updated_at: '2026-13-45T99:00:00Z' }, /updated_at/],
    [{ version: -1e308 }, /version/],
    [{ version: 0 }, /version/],
    [{ version: 2 ** 60 }, /version/],
    [{ version: 1.5 }, /version/],
    [{ container_registry_metadata: { $where: 'x' } }, /container_registry_metadata/],
    [{ container_registry_metadata: { 'a.b': 'x' } }, /container_registry_metadata/],
    [{ container_registry_metadata: { ['a\u0000b']: 'x' } }, /NUL/],
    [{ container_registry_config: { $set: 1 } }, /container_registry_config/],
    [{ unknown_field: 1 }, /unknown_field/],
  ];
  for (const [patch, field] of refused) {
    const run = () => storedFromPeer('eu', { ...peerEntry, ...patch }, origin);
    expect(run).toThrow(PeerAnswerError);
    expect(run).toThrow(field);
  }
  // What the service leaves out gets its defaults; what it writes passes.
  const bare = storedFromPeer('eu', { container_registry_id: peerEntry.container_registry_id, container_registry_name: 'n', container_registry_public_url: 'https://r.example.com' }, origin) as unknown as Record<string, any>;
  expect(bare.container_registry_health).toEqual({ status: 'unknown', consecutive_failures: 0 });
  expect(bare.version).toBe(1);
  expect(bare.created_at).toEqual(expect.any(String));
});

test('When a peer entry is larger than the bound (a 1 MB health object, big metadata), then it is refused with its size, before anything else is checked', () => {
  const big = { ...peerEntry, container_registry_metadata: { blob: 'x'.repeat(4000), more: Array.from({ length: 64 }, () => 'y'.repeat(4000)) } };
  expect(() => storedFromPeer('eu', big, origin, 100_000)).toThrow(/is \d+ bytes of JSON; at most 100000/);
  expect(() => storedFromPeer('eu', big, origin, 1_000_000)).not.toThrow();
  const health = { ...peerEntry, container_registry_health: { status: 'healthy', junk: 'z'.repeat(1024 * 1024) } };
  expect(() => storedFromPeer('eu', health, origin)).toThrow(/bytes of JSON/);
});

test('When a page is checked before parsing, then values (keys included) and nesting are counted outside strings only', () => {
  const page = (changes: string) => Buffer.from(`{"revision":1,"changes":[${changes}]}`);
  expect(pageShapeProblem(page(''))).toBeUndefined();
  // A page of `{}`: 100,000 of them are 300 kB of text and 200,000 values.
  expect(pageShapeProblem(page(Array(MAX_PAGE_VALUES / 2).fill('{}').join(',')))).toMatch(/more than 200000 JSON values/);
  expect(pageShapeProblem(page(Array(MAX_PAGE_VALUES / 4).fill('{}').join(',')))).toBeUndefined();
  expect(pageShapeProblem(Buffer.from('['.repeat(MAX_BODY_DEPTH + 1) + ']'.repeat(MAX_BODY_DEPTH + 1)))).toMatch(/nested deeper/);
  expect(pageShapeProblem(Buffer.from('['.repeat(MAX_BODY_DEPTH) + ']'.repeat(MAX_BODY_DEPTH)))).toBeUndefined();
  // Brackets, commas and colons inside strings (escaped quotes too) cost nothing.
  expect(pageShapeProblem(Buffer.from(JSON.stringify({ s: '{[,:'.repeat(MAX_PAGE_VALUES), t: '\\"[[[['.repeat(100) })))).toBeUndefined();
});

test('When one change alone is over the bounds, then its revision and id are read from the first bytes of the page as this service writes it, or not at all', () => {
  const id = peerEntry.container_registry_id;
  const head = Buffer.from(`{"revision":42,"changes":[{"revision":42,"type":"upsert","container_registry_id":"${id}","entry":{"container_registry_name":"`);
  expect(oversizedChange(head)).toEqual({ revision: 42, id });
  expect(oversizedChange(Buffer.from(`{"revision":43,"changes":[{"revision":42,"type":"upsert","container_registry_id":"${id}"`))).toBeUndefined();
  expect(oversizedChange(Buffer.from(`{"changes":[{"revision":42,"type":"upsert","container_registry_id":"${id}"`))).toBeUndefined();
  expect(oversizedChange(Buffer.from('{"revision":1,"changes":[{},{},{}'))).toBeUndefined();
});
