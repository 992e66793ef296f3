/**
 * TEMPORARY adapter, to be replaced by the change feed (SPEC section 12): keeps the resolver's prefix index
 * (src/resolve) current until the feed exists. The feed will call `index.reset(entries)` once and
 * `index.apply(change)` per change; this file then goes, with its one call in compose.ts.
 *
 * Until then: one read of the catalog at start-up, in the background (`reset`; resolution answers 503 until
 * it is done), then, in this process only, the entry returned by each create and update, each delete, and
 * each stored health result (on-demand checks and sweeps) is applied as it completes. It does so by wrapping those methods of the service and the health writer, so no
 * domain code knows about it. Not seen before a restart: writes made by other replicas, by the seed script,
 * or directly in the database.
 */
import type { ResultWriter } from './health/writer';
import type { Logger } from './logger';
import type { StoredRegistry } from './registries/model';
import type { RegistryRepository } from './registries/repository';
import type { RegistryService } from './registries/service';
import type { ApiEntry, PrefixIndex } from './resolve';

type Indexed = ApiEntry & { container_registry_health: { status?: string; checked_at?: string | null } };

/** The fields resolution reads, as the API names them. */
const PROJECTION = {
  _id: 1,
  container_registry_name: 1,
  container_registry_image_prefix: 1,
  'container_registry_config.mirror_of': 1,
  'container_registry_health.status': 1,
  'container_registry_health.checked_at': 1,
  container_registry_tags: 1,
  'container_registry_origin.peer': 1,
} as const;

function entryOf(doc: Partial<StoredRegistry> & { _id: string }): Indexed {
  const origin = (doc as { container_registry_origin?: { peer?: string } }).container_registry_origin;
  const mirrors = doc.container_registry_config?.mirror_of;
  return {
    container_registry_id: doc._id,
    container_registry_name: doc.container_registry_name ?? '',
    ...(doc.container_registry_image_prefix !== undefined ? { container_registry_image_prefix: doc.container_registry_image_prefix } : {}),
    ...(mirrors ? { container_registry_config: { mirror_of: mirrors } } : {}),
    container_registry_health: { status: doc.container_registry_health?.status, checked_at: doc.container_registry_health?.checked_at ?? null },
    ...(doc.container_registry_tags ? { container_registry_tags: doc.container_registry_tags } : {}),
    ...(origin?.peer ? { container_registry_origin: { peer: origin.peer } } : {}),
  };
}

const checkedAt = (e: Indexed) => Date.parse(e.container_registry_health.checked_at ?? '') || 0;

export interface InterimFeed {
  /** True once the catalog is loaded: until then the index is empty and resolution answers 503. */
  ready(): boolean;
  /** Settles when the catalog is loaded (or the loader was stopped first). */
  loaded: Promise<void>;
  stop(): void;
}

/**
 * Starts feeding `index`: the catalog is read in the background (a whole-catalog read takes seconds on
 * FerretDB v1 at 10,000 entries, and must not hold up start-up), retried while the database is unreachable.
 * Writes made meanwhile are kept and win over the older snapshot.
 */
export function feedResolverInterim(deps: { index: PrefixIndex; repository: RegistryRepository; registries: RegistryService; writer: ResultWriter; logger: Logger }): InterimFeed {
  const { index, registries, writer, logger } = deps;
  const latest = new Map<string, Indexed>();
  /** Entries written or deleted by this process while the catalog was being read. */
  const touched = new Set<string>();
  /** Health stored meanwhile for entries that only the snapshot being read holds. */
  const healthDuringLoad = new Map<string, Indexed['container_registry_health']>();
  let isReady = false;
  let stopped = false;
  const put = (e: Indexed) => {
    // An update's entry carries the health it read; a health result stored meanwhile is newer and stays.
    const known = latest.get(e.container_registry_id);
    if (known && checkedAt(known) > checkedAt(e)) e = { ...e, container_registry_health: known.container_registry_health };
    latest.set(e.container_registry_id, e);
    if (isReady) index.apply({ type: 'upsert', entry: e });
    else touched.add(e.container_registry_id);
  };
  const drop = (id: string) => {
    latest.delete(id);
    if (isReady) index.apply({ type: 'delete', container_registry_id: id });
    else touched.add(id);
  };

  const load = async () => {
    for (let attempt = 1; !stopped; attempt++) {
      const started = performance.now();
      try {
        const docs = await deps.repository.findAllFields(PROJECTION);
        for (const d of docs) {
          if (typeof d._id !== 'string' || touched.has(d._id)) continue;
          const e = entryOf(d as StoredRegistry);
          const health = healthDuringLoad.get(d._id);
          if (health && Date.parse(health.checked_at ?? '') >= checkedAt(e)) e.container_registry_health = health;
          latest.set(d._id, e);
        }
        index.reset(latest.values());
        isReady = true;
        touched.clear();
        healthDuringLoad.clear();
        logger.info('resolve index loaded (interim loader, until the change feed)', { entries: index.size, ms: Math.round(performance.now() - started) });
        return;
      } catch (e) {
        const waitMs = Math.min(30_000, 500 * 2 ** attempt);
        logger.warn('resolve index: reading the catalog failed; retrying', { attempt, retry_in_ms: waitMs, error: (e as Error).message });
        await new Promise((r) => setTimeout(r, waitMs).unref());
      }
    }
  };

  const create = registries.create.bind(registries);
  registries.create = async (body) => {
    const doc = await create(body);
    put(entryOf(doc));
    return doc;
  };
  const update = registries.update.bind(registries);
  registries.update = async (id, body, ifMatch) => {
    const doc = await update(id, body, ifMatch);
    put(entryOf(doc));
    return doc;
  };
  const remove = registries.remove.bind(registries);
  registries.remove = async (id, ifMatch) => {
    await remove(id, ifMatch);
    drop(id);
  };
  const writeHealth = writer.writeHealth.bind(writer);
  writer.writeHealth = async (id, result, lease, known) => {
    const out = await writeHealth(id, result, lease, known);
    if (!out.health) return out;
    const health = { status: out.health.status, checked_at: out.health.checked_at ?? null };
    const e = latest.get(id);
    if (e) {
      if (Date.parse(health.checked_at ?? '') >= checkedAt(e)) put({ ...e, container_registry_health: health });
    } else if (!isReady) {
      healthDuringLoad.set(id, health); // for an entry of the snapshot still being read
    }
    return out;
  };

  return { ready: () => isReady, loaded: load(), stop: () => void (stopped = true) };
}
