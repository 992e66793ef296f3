/**
 * Inventory benchmark (SPEC 19, issue 18), `npm run bench -- --only=inventory`:
 * - a storage refresh of one loopback registry of 100,000 tags (10,000 with --quick) through the real service
 *   (POST /container_registry/:id/refresh_storage): wall time, the crawl's own duration, and the bytes the
 *   inventory takes in the database (BSON of its state and chunks) and in memory (the packed snapshot);
 * - /resolve in process at 10,000 entries, each with an inventory, every candidate's presence looked up:
 *   time per reference, against the same references without inventories;
 * - `/resolve?verify=true` when one candidate never answers: the answer's time against PROBE_TIMEOUT_MS.
 * The registry is a loopback server answering the distribution API from generated data: 100 tags per
 * repository, every tag its own image manifest, one in 50 a two-platform index (so 104,000 manifests for
 * 100,000 tags: STORAGE_MAX_MANIFESTS is raised to 200,000, else the crawl stops truncated at 96,300 tags).
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BSON, type MongoClient } from 'mongodb';
import { MemoryBudget } from '../src/lib/memory-budget';
import { InventoryIndex } from '../src/inventory/memory-index';
import { SnapshotBuilder } from '../src/inventory/snapshot';
import { PrefixIndex, type ApiEntry } from '../src/resolve';
import { parseReference } from '../src/resolve/reference';
import { prng } from './data';
import type { Child } from './proc';
import { catalog, references } from './resolve';

const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;
const TAGS_PER_REPOSITORY = 100;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const CONFIG = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256('config'), size: 1200 };

/** The generated registry: repositories `bench/repo-NNNNN`, tags `tNNN`; manifests made on demand, kept by digest. */
function generatedRegistry(tags: number) {
  const repositories = Array.from({ length: Math.ceil(tags / TAGS_PER_REPOSITORY) }, (_, i) => `bench/repo-${String(i).padStart(5, '0')}`);
  const tagNames = Array.from({ length: TAGS_PER_REPOSITORY }, (_, i) => `t${String(i).padStart(3, '0')}`);
  const byDigest = new Map<string, { type: string; body: Buffer }>();
  const image = (seed: string) => {
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: CONFIG, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(seed), size: 30_000_000 }] }));
    const m = { type: OCI_MANIFEST, body, digest: sha256(body) };
    byDigest.set(m.digest, m);
    return m;
  };
  const manifest = (repo: string, tag: string) => {
    if (Number(tag.slice(1)) % 50 !== 0) return image(`${repo}:${tag}`);
    const children = ['amd64', 'arm64'].map((architecture) => ({ architecture, m: image(`${repo}:${tag}:${architecture}`) }));
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: children.map(({ architecture, m }) => ({ mediaType: OCI_MANIFEST, digest: m.digest, size: m.body.length, platform: { os: 'linux', architecture } })) }));
    return { type: OCI_INDEX, body, digest: sha256(body) };
  };
  const page = (names: string[], url: URL, field: string, path: string) => {
    const n = Number(url.searchParams.get('n') ?? 1000);
    const last = url.searchParams.get('last');
    const from = last ? names.findIndex((x) => x > last) : 0;
    const items = from < 0 ? [] : names.slice(from, from + n);
    const more = from >= 0 && from + n < names.length;
    return { body: JSON.stringify({ [field]: items }), link: more ? `<${path}?n=${n}&last=${encodeURIComponent(items[items.length - 1]!)}>; rel="next"` : undefined };
  };
  return (url: URL): { status: number; type?: string; body?: Buffer | string; headers?: Record<string, string> } => {
    const p = url.pathname;
    if (p === '/v2/') return { status: 200, type: 'application/json', body: '{}' };
    if (p === '/v2/_catalog') {
      const r = page(repositories, url, 'repositories', p);
      return { status: 200, type: 'application/json', body: r.body, headers: r.link ? { Link: r.link } : {} };
    }
    const list = /^\/v2\/(.+)\/tags\/list$/.exec(p);
    if (list) {
      const r = page(tagNames, url, 'tags', p);
      return { status: 200, type: 'application/json', body: JSON.stringify({ name: list[1], ...JSON.parse(r.body) }), headers: r.link ? { Link: r.link } : {} };
    }
    const m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(p);
    if (m) {
      const found = m[2]!.startsWith('sha256:') ? byDigest.get(m[2]!) : manifest(m[1]!, m[2]!);
      if (!found) return { status: 404 };
      return { status: 200, type: found.type, body: found.body, headers: { 'Docker-Content-Digest': sha256(found.body) } };
    }
    return { status: 404 };
  };
}

async function serve(handler: ReturnType<typeof generatedRegistry>): Promise<Server> {
  const server = createServer((req, res) => {
    const a = handler(new URL(req.url ?? '/', 'http://x'));
    res.writeHead(a.status, { 'Docker-Distribution-API-Version': 'registry/2.0', ...(a.type ? { 'Content-Type': a.type } : {}), ...a.headers });
    res.end(req.method === 'HEAD' ? undefined : a.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

/** The BSON bytes of every document of a collection that belongs to registry `id`. */
async function storedBytes(client: MongoClient, dbName: string, id: string): Promise<{ state: number; chunks: number; chunk_count: number }> {
  const db = client.db(dbName);
  const state = await db.collection('container_registry_inventory_states').findOne({ _id: id as never });
  let chunks = 0;
  let count = 0;
  for await (const doc of db.collection('container_registry_inventory').find({ registry_id: id })) {
    chunks += BSON.calculateObjectSize(doc);
    count++;
  }
  return { state: state ? BSON.calculateObjectSize(state) : 0, chunks, chunk_count: count };
}

/** One storage refresh of a registry of `tags` tags through the service; the inventory's size stored and in memory. */
export async function refreshPhase(deps: { client: MongoClient; uri: string; tags: number; startService: (uri: string, dbName: string, extra: Record<string, string>) => Promise<Child>; writeAuth: Record<string, string>; probeTimeoutMs: number; log: (m: string) => void }) {
  const dbName = 'bench_inventory';
  const registry = await serve(generatedRegistry(deps.tags));
  const service = await deps.startService(deps.uri, dbName, { STORAGE_TIMEOUT_MS: '3600000', STORAGE_MAX_MANIFESTS: '200000' });
  try {
    const base = `http://127.0.0.1:${service.port}`;
    const headers = { ...deps.writeAuth, 'Content-Type': 'application/json' };
    const url = `http://127.0.0.1:${(registry.address() as AddressInfo).port}`;
    const created = await fetch(`${base}/container_registry`, { method: 'POST', headers, body: JSON.stringify({ container_registry_name: 'inventory-bench', container_registry_public_url: url, container_registry_storage_info: { storage_type: 'fs', storage_size: 1, registry_type: 'aios' } }) });
    if (created.status !== 201) throw new Error(`create: ${created.status} ${await created.text()}`);
    const id = ((await created.json()) as { container_registry_id: string }).container_registry_id;
    const t0 = performance.now();
    const res = await fetch(`${base}/container_registry/${id}/refresh_storage?wait=300`, { method: 'POST', headers: deps.writeAuth });
    const wallMs = performance.now() - t0;
    const body = (await res.json()) as { status: string; observed: { duration_ms: number; tag_count: number; truncated: boolean }; inventory: { tag_count: number } | null };
    if (res.status !== 200 || !body.inventory) throw new Error(`refresh: ${res.status} ${JSON.stringify(body)}`);
    const bytes = await storedBytes(deps.client, dbName, id);
    const verify = await verifyAgainstHanging(base, headers, new URL(url).host, deps.probeTimeoutMs);
    const figures = {
      tags: body.inventory.tag_count,
      truncated: body.observed.truncated,
      refresh_wall_ms: Math.round(wallMs),
      crawl_ms: body.observed.duration_ms,
      stored_bytes: bytes.state + bytes.chunks,
      stored_bytes_per_tag: round((bytes.state + bytes.chunks) / body.inventory.tag_count, 1),
      chunks: bytes.chunk_count,
      verify,
    };
    deps.log(`inventory refresh of ${figures.tags} tags: ${figures.refresh_wall_ms} ms (crawl ${figures.crawl_ms} ms), ${figures.stored_bytes} bytes stored (${figures.stored_bytes_per_tag} per tag, ${figures.chunks} chunks)`);
    deps.log(`GET /resolve?verify=true with a mirror that never answers: ${verify.wall_ms} ms (PROBE_TIMEOUT_MS ${verify.probe_timeout_ms})`);
    return figures;
  } finally {
    await service.stop();
    await new Promise((resolve) => registry.close(resolve));
  }
}

/**
 * `verify=true` when one candidate never answers: a mirror of the generated registry on a server that accepts
 * connections and stays silent. The answer's wall time against PROBE_TIMEOUT_MS (the bound it must keep).
 */
async function verifyAgainstHanging(base: string, headers: Record<string, string>, originHost: string, probeTimeoutMs: number) {
  const silent = createServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const body = JSON.stringify({ container_registry_name: 'inventory-bench-silent', container_registry_public_url: url, container_registry_config: { mirror_of: [originHost] }, container_registry_storage_info: { storage_type: 'fs', storage_size: 1, registry_type: 'aios' } });
    const created = await fetch(`${base}/container_registry`, { method: 'POST', headers, body });
    if (created.status !== 201) throw new Error(`create: ${created.status} ${await created.text()}`);
    const t0 = performance.now();
    const res = await fetch(`${base}/resolve?image=${originHost}/bench/repo-00000:t001&verify=true`, { headers });
    const answer = (await res.json()) as { candidates: Array<{ container_registry_name: string; present: boolean | null; error?: string }> };
    const wallMs = Math.round(performance.now() - t0);
    return { wall_ms: wallMs, probe_timeout_ms: probeTimeoutMs, candidates: answer.candidates.map((c) => `${c.container_registry_name}: ${c.present}${c.error ? ` (${c.error})` : ''}`) };
  } finally {
    silent.closeAllConnections();
    await new Promise((resolve) => silent.close(resolve));
  }
}

/** The path of a reference's repository on registry `prefix` (its image prefix without the host). */
const pathUnder = (prefix: string) => prefix.replace(/^(\[[^\]]+\]|[^/])+/, '').replace(/^\//, '');

/** /resolve in process at 10,000 entries, every entry with an inventory: time per reference with and without presence. */
export function resolveWithInventory(log: (m: string) => void) {
  const n = 10_000;
  const rand = prng(7);
  const docs = catalog(n);
  const entries: ApiEntry[] = docs.map((e, i) => ({ ...(e as unknown as ApiEntry), container_registry_id: `id-${i}`, container_registry_health: { status: rand() < 0.8 ? 'healthy' : 'degraded' } }));
  const index = new PrefixIndex();
  index.reset(entries);
  const inventories = new InventoryIndex(new MemoryBudget(1024 * 2 ** 20));
  const observedAt = new Date().toISOString();
  let rows = 0;
  let memory = 0;
  entries.forEach((e, i) => {
    // Its own repository app-i (v1, 2 and 10 more tags) and, for a mirror, 1,000 repositories of upstream images.
    const under = pathUnder(e.container_registry_image_prefix!);
    const repos = (e.container_registry_config as { mirror_of?: string[] } | undefined)?.mirror_of ? Array.from({ length: 1000 }, (_, k) => `library/nginx-${k}`) : [`${under ? `${under}/` : ''}app-${i}`];
    const builder = new SnapshotBuilder({ registryId: e.container_registry_id, generation: 1, observedAt, truncated: false }, repos.length * 12);
    for (const repository of repos.sort()) {
      for (const tag of ['2', ...Array.from({ length: 10 }, (_, k) => `old-${k}`), 'v1'].sort()) {
        builder.add({ repository, tag, digest: sha256(`${repository}:${tag}`), media_type: OCI_MANIFEST, platforms: null });
        rows++;
      }
    }
    const reserved = builder.bytes;
    inventories.reserve(reserved);
    inventories.put(builder.build(), reserved);
    memory += reserved;
  });
  const refs = references(n, 20_000).map((r) => parseReference(r));
  const time = (opts: Parameters<PrefixIndex['resolve']>[1]) => {
    for (const r of refs) index.resolve(r, opts);
    const times: number[] = [];
    const presence = { true: 0, false: 0, null: 0 };
    for (let round = 0; round < 3; round++) {
      for (const r of refs) {
        const s = process.hrtime.bigint();
        const answer = index.resolve(r, opts);
        times.push(Number(process.hrtime.bigint() - s) / 1000);
        if (round === 0) for (const c of answer.candidates) presence[String(c.present ?? null) as 'true' | 'false' | 'null']++;
      }
    }
    times.sort((a, b) => a - b);
    return { mean_us: round(times.reduce((a, b) => a + b, 0) / times.length), p99_us: round(times[Math.floor(times.length * 0.99)]!), presence };
  };
  const without = time({ prefer: ['gpu'] });
  const withInventory = time({ prefer: ['gpu'], inventory: inventories });
  const figures = { entries: n, inventory_rows: rows, inventory_memory_bytes: memory, memory_bytes_per_tag: round(memory / rows, 1), references: refs.length * 3, without_inventory: without, with_inventory: withInventory };
  log(`resolve at ${n} entries with inventories (${rows} tags, ${figures.memory_bytes_per_tag} bytes per tag in memory): mean ${withInventory.mean_us} µs, p99 ${withInventory.p99_us} µs per reference (without: mean ${without.mean_us}, p99 ${without.p99_us}); presence ${JSON.stringify(withInventory.presence)}`);
  return figures;
}
