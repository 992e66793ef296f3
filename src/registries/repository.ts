/**
 * The only module that touches the `container_registries` collection for catalog reads and writes.
 * Every query carries a server-side time limit (maxTimeMS); writes are compare-and-set on `version`.
 */
import { MongoServerError, type Collection, type Db, type Filter, type UpdateFilter } from 'mongodb';
import { ConflictError } from '../errors';
import { COLLECTION, type StoredRegistry } from './model';
import type { QueryPlan } from './query';

/** Top-level fields the API owns; storage_info is written per key so `observed` (service-owned) is never clobbered. */
const STORAGE = 'container_registry_storage_info';

export class RegistryRepository {
  readonly collection: Collection<StoredRegistry>;

  constructor(db: Db, private readonly queryTimeoutMs: number) {
    this.collection = db.collection<StoredRegistry>(COLLECTION);
  }

  /** Indexes backing name uniqueness and the common queries; idempotent, run at startup. */
  async ensureIndexes(): Promise<void> {
    await this.collection.createIndexes([
      { key: { container_registry_name: 1 }, name: 'name_unique', unique: true },
      { key: { container_registry_tags: 1 }, name: 'tags' },
      { key: { 'container_registry_storage_info.registry_type': 1 }, name: 'registry_type' },
      { key: { 'container_registry_health.status': 1 }, name: 'health_status' },
    ]);
  }

  async insert(doc: StoredRegistry): Promise<void> {
    try {
      await this.collection.insertOne(doc);
    } catch (e) {
      throw duplicateToConflict(e, doc);
    }
  }

  async findById(id: string): Promise<StoredRegistry | null> {
    return this.collection.findOne({ _id: id } as Filter<StoredRegistry>, { maxTimeMS: this.queryTimeoutMs });
  }

  async findByName(name: string): Promise<StoredRegistry | null> {
    return this.collection.findOne({ container_registry_name: name }, { maxTimeMS: this.queryTimeoutMs });
  }

  /**
   * Writes `next` over `current` if nobody wrote in between (same version). Returns false when the
   * version moved on. Only API-owned fields are written.
   */
  async replaceIfVersion(current: StoredRegistry, next: StoredRegistry): Promise<boolean> {
    const $set: Record<string, unknown> = {};
    const $unset: Record<string, ''> = {};
    const fields = new Set([...Object.keys(current), ...Object.keys(next)]);
    for (const f of fields) {
      if (f === '_id' || f.startsWith('_') || f === 'container_registry_health') continue;
      if (f === STORAGE) {
        const cur = (current[STORAGE] ?? {}) as Record<string, unknown>;
        const nxt = (next[STORAGE] ?? {}) as Record<string, unknown>;
        for (const k of new Set([...Object.keys(cur), ...Object.keys(nxt)])) {
          if (k === 'observed') continue;
          if (nxt[k] === undefined) $unset[`${STORAGE}.${k}`] = '';
          else $set[`${STORAGE}.${k}`] = nxt[k];
        }
        continue;
      }
      const v = (next as unknown as Record<string, unknown>)[f];
      if (v === undefined) $unset[f] = '';
      else $set[f] = v;
    }
    const update: UpdateFilter<StoredRegistry> = { $set: $set as Partial<StoredRegistry> };
    if (Object.keys($unset).length > 0) update.$unset = $unset as UpdateFilter<StoredRegistry>['$unset'];
    try {
      const r = await this.collection.updateOne({ _id: current._id, version: current.version } as Filter<StoredRegistry>, update);
      return r.matchedCount === 1;
    } catch (e) {
      throw duplicateToConflict(e, next);
    }
  }

  /** 'deleted', 'missing', or 'stale' (exists, but not at `version`). */
  async delete(id: string, version?: number): Promise<'deleted' | 'missing' | 'stale'> {
    const filter = (version === undefined ? { _id: id } : { _id: id, version }) as Filter<StoredRegistry>;
    const r = await this.collection.deleteOne(filter);
    if (r.deletedCount === 1) return 'deleted';
    if (version === undefined) return 'missing';
    return (await this.findById(id)) ? 'stale' : 'missing';
  }

  /** One page of a validated query: limit + 1 rows, so the caller knows whether there is a next page. */
  async query(plan: QueryPlan): Promise<StoredRegistry[]> {
    const { dbField, direction } = plan.sort;
    const clauses: Record<string, unknown>[] = [];
    if (Object.keys(plan.filter).length > 0) clauses.push(plan.filter);
    if (plan.after) {
      const cmp = direction === 1 ? '$gt' : '$lt';
      clauses.push(
        dbField === '_id'
          ? { _id: { [cmp]: plan.after.id } }
          : { $or: [{ [dbField]: { [cmp]: plan.after.key } }, { [dbField]: plan.after.key, _id: { [cmp]: plan.after.id } }] },
      );
    }
    const filter = clauses.length === 0 ? {} : clauses.length === 1 ? clauses[0]! : { $and: clauses };
    const sort: Record<string, 1 | -1> = dbField === '_id' ? { _id: direction } : { [dbField]: direction, _id: direction };
    let projection: Record<string, 1> | undefined;
    if (plan.fields) {
      projection = { _id: 1, [dbField]: 1 };
      for (const f of plan.fields) if (f !== 'container_registry_id') projection[f] = 1;
    }
    return this.collection
      .find(filter as Filter<StoredRegistry>, { sort, limit: plan.limit + 1, projection, maxTimeMS: this.queryTimeoutMs })
      .toArray();
  }

  async count(): Promise<number> {
    return this.collection.countDocuments({}, { maxTimeMS: this.queryTimeoutMs });
  }
}

function duplicateToConflict(e: unknown, doc: StoredRegistry): unknown {
  if (!(e instanceof MongoServerError) || e.code !== 11000) return e;
  const key = Object.keys((e.keyPattern as Record<string, unknown> | undefined) ?? (e.keyValue as Record<string, unknown> | undefined) ?? {})[0];
  const byName = key === 'container_registry_name' || (!key && /container_registry_name|name_unique/.test(e.message));
  if (byName) {
    return new ConflictError(`A registry named "${doc.container_registry_name}" already exists.`, [
      { path: '/container_registry_name', message: 'is already used by another entry' },
    ]);
  }
  return new ConflictError(`A registry with id ${doc._id} already exists.`, [{ path: '/container_registry_id', message: 'is already used by another entry' }]);
}
