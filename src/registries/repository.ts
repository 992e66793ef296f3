/**
 * The only module that touches the `container_registries` collection for catalog reads and writes.
 * Every query carries a server-side time limit (maxTimeMS); writes are compare-and-set on `version`.
 */
import { type Collection, type Db, type Document, type Filter, type UpdateFilter } from 'mongodb';
import { Claims, ContendedError, isDuplicateKey, SequencedWriter } from '../db/atomic';
import { ensureIndexes } from '../db/indexes';
import { ConflictError, ServiceUnavailableError } from '../errors';
import { COLLECTION, type StoredRegistry } from './model';
import type { QueryPlan } from './query';

const STORAGE = 'container_registry_storage_info';

export type EntryWritePlan<R> = { kind: 'none'; result: R } | { kind: 'replace'; next: StoredRegistry; result: R } | { kind: 'delete'; result: R };

/**
 * The update that turns `current` into `next`, limited to client-owned fields: internal `_` fields and
 * health are left alone, and storage_info is written per key so `observed` (service-owned) is never touched.
 */
function diffUpdate(current: StoredRegistry, next: StoredRegistry): UpdateFilter<Document> {
  const $set: Record<string, unknown> = {};
  const $unset: Record<string, ''> = {};
  const cur = current as unknown as Record<string, unknown>;
  const nxt = next as unknown as Record<string, unknown>;
  for (const f of new Set([...Object.keys(cur), ...Object.keys(nxt)])) {
    if (f.startsWith('_') || f === 'container_registry_health') continue;
    if (f === STORAGE) {
      const a = (cur[STORAGE] ?? {}) as Record<string, unknown>;
      const b = (nxt[STORAGE] ?? {}) as Record<string, unknown>;
      for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
        if (k === 'observed') continue;
        if (b[k] === undefined) $unset[`${STORAGE}.${k}`] = '';
        else $set[`${STORAGE}.${k}`] = b[k];
      }
      continue;
    }
    if (nxt[f] === undefined) $unset[f] = '';
    else $set[f] = nxt[f];
  }
  return Object.keys($unset).length > 0 ? { $set, $unset } : { $set };
}

export class RegistryRepository {
  readonly collection: Collection<StoredRegistry>;

  private readonly writer: SequencedWriter<StoredRegistry>;
  /** The document of the last replace plan, to name the field of a unique-index violation. */
  private lastPlanned!: StoredRegistry;

  constructor(db: Db, private readonly queryTimeoutMs: number, readonly claims = new Claims(db)) {
    this.collection = db.collection<StoredRegistry>(COLLECTION);
    this.writer = new SequencedWriter(this.collection, claims);
  }

  /** Indexes backing name uniqueness and the common queries; idempotent, run at startup. */
  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.collection, [
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
      throw await this.duplicateToConflict(e, doc);
    }
  }

  async findById(id: string): Promise<StoredRegistry | null> {
    return this.collection.findOne({ _id: id } as Filter<StoredRegistry>, { maxTimeMS: this.queryTimeoutMs });
  }

  async findByName(name: string): Promise<StoredRegistry | null> {
    return this.collection.findOne({ container_registry_name: name }, { maxTimeMS: this.queryTimeoutMs });
  }

  /** The entries with one of these ids or names, in one query (batch onboarding). */
  async findByIdsOrNames(ids: string[], names: string[]): Promise<StoredRegistry[]> {
    if (ids.length === 0 && names.length === 0) return [];
    const filter = { $or: [{ _id: { $in: ids } }, { container_registry_name: { $in: names } }] } as Filter<StoredRegistry>;
    return this.collection.find(filter, { maxTimeMS: this.queryTimeoutMs }).toArray();
  }

  /**
   * New entries in one unordered insertMany; answers the indexes of the documents that were not stored (a
   * duplicate id or name, or an error): a document counts as stored only when it is found as written.
   */
  async insertMany(docs: StoredRegistry[]): Promise<Set<number>> {
    try {
      await this.collection.insertMany(docs, { ordered: false });
      return new Set();
    } catch {
      const ids = docs.map((d) => d._id);
      const stored = await this.collection
        .find({ _id: { $in: ids } } as Filter<StoredRegistry>, { projection: { _id: 1, created_at: 1, container_registry_name: 1 }, maxTimeMS: this.queryTimeoutMs })
        .toArray()
        .catch(() => []);
      const written = new Map(docs.map((d) => [d._id, d]));
      const mine = new Set(stored.filter((d) => written.get(d._id)?.created_at === d.created_at && written.get(d._id)?.container_registry_name === d.container_registry_name).map((d) => d._id));
      return new Set(ids.flatMap((id, i) => (mine.has(id) ? [] : [i])));
    }
  }

  /**
   * Atomic read-plan-write of entry `id` (see db/atomic.ts): `plan` sees the current document (null when
   * missing) and answers nothing, a new version of the client-owned fields, or a deletion. It is called
   * again if another writer got in first. Only API-owned fields are written, so service-owned ones
   * (health, observed storage, leases) written concurrently are never clobbered.
   */
  async modify<R>(id: string, plan: (doc: StoredRegistry | null) => EntryWritePlan<R>): Promise<R> {
    try {
      return await this.writer.modify(id, (doc) => {
        const p = plan(doc);
        if (p.kind !== 'replace') return p;
        this.lastPlanned = p.next;
        return { kind: 'update', update: diffUpdate(doc!, p.next), result: p.result };
      });
    } catch (e) {
      if (e instanceof ContendedError) throw new ServiceUnavailableError(`Entry ${id} is being written too often to apply this change; try again.`, 1);
      throw await this.duplicateToConflict(e, this.lastPlanned);
    }
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

  /**
   * Every entry with only the `projection` fields, read in one pass (start-up loads of in-memory indexes).
   * A whole-catalog read may take longer than one query's QUERY_TIMEOUT_MS on a large catalog, so it gets
   * at least two minutes.
   */
  async findAllFields(projection: Record<string, 1>): Promise<Partial<StoredRegistry>[]> {
    return this.collection.find({}, { projection, batchSize: 5000, maxTimeMS: Math.max(this.queryTimeoutMs, 120_000) }).toArray();
  }

  async count(): Promise<number> {
    return this.collection.countDocuments({}, { maxTimeMS: this.queryTimeoutMs });
  }

  /**
   * A unique-index violation as a 409 naming the field. MongoDB reports it as E11000 with keyPattern;
   * FerretDB v1 sends E11000 without keyPattern on insert and an InternalError "UNIQUE constraint failed"
   * on update, so the field is found by looking the name up when the error does not say.
   */
  private async duplicateToConflict(e: unknown, doc: StoredRegistry): Promise<unknown> {
    if (!isDuplicateKey(e)) return e;
    const err = e as { keyPattern?: Record<string, unknown>; message: string };
    const key = Object.keys(err.keyPattern ?? {})[0];
    let byName = key === 'container_registry_name' || /name_unique/.test(err.message);
    if (!key && !byName) {
      const holder = await this.findByName(doc.container_registry_name).catch(() => null);
      byName = holder !== null && holder._id !== doc._id;
    }
    if (byName) {
      return new ConflictError(`A registry named "${doc.container_registry_name}" already exists.`, [
        { path: '/container_registry_name', message: 'is already used by another entry' },
      ]);
    }
    return new ConflictError(`A registry with id ${doc._id} already exists.`, [{ path: '/container_registry_id', message: 'is already used by another entry' }]);
  }
}
