/**
 * The only module that touches the `container_registries` collection for catalog reads and writes.
 * Every query carries a server-side time limit (maxTimeMS); writes go through the EntryWriter (writes.ts),
 * which orders them in the change log and settles concurrent writers of an entry there.
 */
import { type Collection, type Db, type Filter } from 'mongodb';
import { Claims } from '../db/atomic';
import { ensureIndexes } from '../db/indexes';
import { COLLECTION, NAME_KEY, nameKey, type StoredRegistry } from './model';

const localNameKey = (name: string) => nameKey({ container_registry_name: name });
import type { QueryPlan } from './query';
import { EntryWriter, type EntryPlan, type KnownEntry } from './writes';

export type EntryWritePlan<R> = EntryPlan<R>;

export class RegistryRepository {
  readonly collection: Collection<StoredRegistry>;

  /** Every write of an entry goes through this writer (change log first, then the collection). */
  readonly writer: EntryWriter;

  constructor(db: Db, private readonly queryTimeoutMs: number, readonly claims = new Claims(db), feed: { holeFillMs?: number; compactAfterMs?: number } = {}) {
    this.collection = db.collection<StoredRegistry>(COLLECTION);
    this.writer = new EntryWriter(db, claims, feed);
  }

  /** Indexes backing name uniqueness and the common queries; idempotent, run at startup. */
  async ensureIndexes(): Promise<void> {
    await this.migrateNameKeys();
    await ensureIndexes(this.collection, [
      { key: { [NAME_KEY]: 1 }, name: 'name_key_unique', unique: true },
      { key: { container_registry_tags: 1 }, name: 'tags' },
      { key: { 'container_registry_storage_info.registry_type': 1 }, name: 'registry_type' },
      { key: { 'container_registry_health.status': 1 }, name: 'health_status' },
    ]);
    await this.writer.ensureIndexes();
  }

  /**
   * Names are unique per origin (SPEC 15): the unique index (not sparse: a sparse one made contended updates several times slower on FerretDB v1) is on `_name_key` (model.ts nameKey), which the
   * writer stamps on every write. Data written before it had a unique index on the name alone: the key is
   * filled in for entries that lack it, then that index is dropped.
   */
  private async migrateNameKeys(): Promise<void> {
    const missing = await this.collection.find({ [NAME_KEY]: { $exists: false } } as Filter<StoredRegistry>, { projection: { _id: 1, container_registry_name: 1, container_registry_origin: 1 } }).toArray();
    for (const doc of missing) await this.collection.updateOne({ _id: doc._id } as Filter<StoredRegistry>, { $set: { [NAME_KEY]: nameKey(doc) } });
    const names = await this.collection.listIndexes().toArray().catch(() => []);
    if (names.some((i) => i.name === 'name_unique')) await this.collection.dropIndex('name_unique').catch(() => undefined);
  }

  /** Stores a new entry; answers it as stored (with its revision). 409 when the id or name is taken. */
  async insert(doc: StoredRegistry): Promise<StoredRegistry> {
    return this.writer.create(doc);
  }

  async findById(id: string): Promise<StoredRegistry | null> {
    return this.collection.findOne({ _id: id } as Filter<StoredRegistry>, { maxTimeMS: this.queryTimeoutMs });
  }

  /** The local entry named `name` (mirrored entries may share it). */
  async findByName(name: string): Promise<StoredRegistry | null> {
    return this.collection.findOne({ [NAME_KEY]: localNameKey(name) } as Filter<StoredRegistry>, { maxTimeMS: this.queryTimeoutMs });
  }

  /** The entries with one of these ids or local names, in one query (batch onboarding). */
  async findByIdsOrNames(ids: string[], names: string[]): Promise<StoredRegistry[]> {
    if (ids.length === 0 && names.length === 0) return [];
    const filter = { $or: [{ _id: { $in: ids } }, { [NAME_KEY]: { $in: names.map(localNameKey) } }] } as Filter<StoredRegistry>;
    return this.collection.find(filter, { maxTimeMS: this.queryTimeoutMs }).toArray();
  }

  /**
   * New entries in one append and one insertMany; answers the indexes of the documents that were not
   * stored (a taken id or name, or an error).
   */
  async insertMany(docs: StoredRegistry[]): Promise<Set<number>> {
    const out = await this.writer.createMany(docs);
    return new Set(out.flatMap((r, i) => (r instanceof Error ? [i] : [])));
  }

  /**
   * Atomic read-plan-write of entry `id` (see writes.ts): `plan` sees the current document (null when
   * missing) and answers nothing, the entry's next state, or its deletion. It is called again if another
   * writer got in first.
   */
  async modify<R>(id: string, plan: (doc: StoredRegistry | null) => EntryWritePlan<R>, known?: KnownEntry): Promise<R> {
    return this.writer.modify(id, plan, known);
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

}
