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
import { databaseFilter } from './db-filter';
import type { QueryPlan } from './query';
import { EntryWriter, type EntryPlan, type KnownEntry } from './writes';

export type EntryWritePlan<R> = EntryPlan<R>;

/**
 * A filter evaluated in the service on documents the database returned, exactly as the view evaluates it, under
 * a query's time budget (the composition root passes the view's: src/view/filter.ts yieldingFilter).
 */
export type ExactFilter = (filter: Record<string, unknown>) => (doc: StoredRegistry) => Promise<boolean>;

export class RegistryRepository {
  readonly collection: Collection<StoredRegistry>;

  /** Every write of an entry goes through this writer (change log first, then the collection). */
  readonly writer: EntryWriter;

  /** Evaluates what the database cannot run exactly (db-filter.ts); unset, the database runs every filter as it is. */
  exactFilter?: ExactFilter;

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

  /** The entry by id, as the writer reads it: never older than a change of it this replica's feed has read (writes.ts read). */
  async findById(id: string): Promise<StoredRegistry | null> {
    return this.writer.read(id, this.queryTimeoutMs);
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
   * writer got in first, until `giveUpAt` (then a 503).
   */
  async modify<R>(id: string, plan: (doc: StoredRegistry | null) => EntryWritePlan<R>, known?: KnownEntry, giveUpAt?: number): Promise<R> {
    return this.writer.modify(id, plan, known, giveUpAt);
  }

  /**
   * One page of a validated query: limit + 1 rows, so the caller knows whether there is a next page. A filter
   * the database cannot run exactly (db-filter.ts) is relaxed for it, and the rows it returns are filtered by
   * exactFilter until the page is full; the page is then read again by id with the projection.
   */
  async query(plan: QueryPlan): Promise<StoredRegistry[]> {
    const { dbField, direction } = plan.sort;
    const db = this.exactFilter ? databaseFilter(plan.filter) : { filter: plan.filter, exact: true };
    if (db.filter === false) return [];
    const clauses: Record<string, unknown>[] = [];
    if (Object.keys(db.filter).length > 0) clauses.push(db.filter);
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
    if (db.exact) {
      return this.collection.find(filter as Filter<StoredRegistry>, { sort, limit: plan.limit + 1, projection, maxTimeMS: this.queryTimeoutMs }).toArray();
    }
    const rows = await this.matching(filter, sort, plan);
    if (!projection || rows.length === 0) return rows;
    return this.collection
      .find({ _id: { $in: rows.map((r) => r._id) } } as Filter<StoredRegistry>, { sort, projection, maxTimeMS: this.queryTimeoutMs })
      .toArray();
  }

  /** The first limit + 1 documents of the relaxed `filter`'s answer, in `sort` order, that the exact filter matches. */
  private async matching(filter: Record<string, unknown>, sort: Record<string, 1 | -1>, plan: QueryPlan): Promise<StoredRegistry[]> {
    const exact = this.exactFilter!(plan.filter);
    const out: StoredRegistry[] = [];
    const cursor = this.collection.find(filter as Filter<StoredRegistry>, { sort, batchSize: 200, maxTimeMS: this.queryTimeoutMs });
    try {
      for await (const doc of cursor) {
        if (await exact(doc)) out.push(doc);
        if (out.length > plan.limit) break;
      }
    } finally {
      await cursor.close();
    }
    return out;
  }
}
