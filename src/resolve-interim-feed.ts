/**
 * TEMPORARY adapter, to be replaced by the change feed (SPEC section 12): keeps the resolver's prefix index
 * (src/resolve) current until the feed exists. The feed will call `index.reset(entries)` once and
 * `index.apply(change)` per change; this file then goes, with its one call in compose.ts.
 *
 * Until then: one read of the catalog at start-up (`reset`), then, in this process only, the entry returned
 * by each create and update, each delete, and each stored health result (on-demand checks and sweeps) is
 * applied as it completes. It does so by wrapping those methods of the service and the health writer, so no
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

export async function feedResolverInterim(deps: { index: PrefixIndex; repository: RegistryRepository; registries: RegistryService; writer: ResultWriter; logger: Logger }): Promise<void> {
  const { index, registries, writer } = deps;
  const latest = new Map<string, Indexed>();
  const put = (e: Indexed) => {
    // An update's entry carries the health it read; a health result stored meanwhile is newer and stays.
    const known = latest.get(e.container_registry_id);
    if (known && checkedAt(known) > checkedAt(e)) e = { ...e, container_registry_health: known.container_registry_health };
    latest.set(e.container_registry_id, e);
    index.apply({ type: 'upsert', entry: e });
  };

  const started = performance.now();
  const docs = await deps.repository.findAllFields(PROJECTION);
  for (const d of docs) if (typeof d._id === 'string') latest.set(d._id, entryOf(d as StoredRegistry));
  index.reset(latest.values());
  deps.logger.info('resolve index loaded (interim loader, until the change feed)', { entries: index.size, ms: Math.round(performance.now() - started) });

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
    latest.delete(id);
    index.apply({ type: 'delete', container_registry_id: id });
  };
  const writeHealth = writer.writeHealth.bind(writer);
  writer.writeHealth = async (id, result, lease, known) => {
    const out = await writeHealth(id, result, lease, known);
    const e = latest.get(id);
    if (out.health && e && Date.parse(out.health.checked_at ?? '') >= checkedAt(e)) {
      put({ ...e, container_registry_health: { status: out.health.status, checked_at: out.health.checked_at ?? null } });
    }
    return out;
  };
}
