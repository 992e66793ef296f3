/**
 * Atomic writes that hold on every backend this service runs on.
 *
 * Why this exists: FerretDB v1 (the embedded default) evaluates an update's filter and writes the whole
 * document back in two steps, so `updateOne({_id, version: v}, ...)`, `findOneAndUpdate` and even `$inc`
 * lose writes under concurrency (measured: 50 concurrent `$inc` → 4; 30 concurrent claims with
 * findOneAndUpdate → 11 winners). What it does enforce atomically is a unique index: of N concurrent
 * inserts of one `_id`, exactly one succeeds. The primitives here and the change log (changelog.ts, which
 * orders and compare-and-sets every entry write) are built on that, and are equally correct on MongoDB.
 *
 * - `claimOnce(key)`: exactly one caller wins a key (compaction turns, once-only work).
 */
import { MongoBulkWriteError, MongoServerError, type Collection, type Db, type Document, type Filter, type UpdateFilter } from 'mongodb';

/** Claims are kept this long: far longer than any period they arbitrate, so none can be won twice. */
export const TOKEN_RETENTION_MS = 15 * 60_000;

/**
 * How a unique-index refusal reads when it comes without code 11000: FerretDB v1 answers an update that a unique
 * index refuses with code 1 and its backend's message (SQLite: `UNIQUE constraint failed`; PostgreSQL:
 * `duplicate key value violates unique constraint`); inserts get 11000 on both.
 */
const DUPLICATE_MESSAGE = /UNIQUE constraint failed|duplicate key/i;

export function isDuplicateKey(e: unknown): boolean {
  return e instanceof MongoServerError && (e.code === 11000 || DUPLICATE_MESSAGE.test(e.message));
}

/**
 * An upsert of one document that several processes may run at once while it does not exist yet: all of them
 * find nothing and insert, and every insert but one is refused as a duplicate key (the server does not retry
 * it: MongoDB only for some filter shapes, FerretDB never). A refused one then applies its update to the
 * document the winner inserted, when `filter` still matches it (a condition beside the `_id` decides).
 */
export async function upsertShared<T extends Document>(collection: Collection<T>, filter: Filter<T>, update: UpdateFilter<T>): Promise<void> {
  try {
    await collection.updateOne(filter, update, { upsert: true });
  } catch (e) {
    if (!isDuplicateKey(e)) throw e;
    await collection.updateOne(filter, update);
  }
}

/** The server refused one document of a batch insert for another reason than a unique index (its message says why). */
export class DocumentRefused extends Error {
  override name = 'DocumentRefused';
}

/**
 * What a batch insert's error says of each document when every document's outcome is known: the positions
 * the server refused, each with 'duplicate' (a unique index) or why; every other document was inserted.
 * Undefined when the outcome is unknown: the driver reports a connection lost mid-batch as a
 * MongoBulkWriteError too, with no write errors, and taking that for "all inserted" made writers act on
 * inserts that never happened.
 */
export function refusals(e: unknown, count: number): Map<number, 'duplicate' | DocumentRefused> | undefined {
  if (count === 1 && isDuplicateKey(e)) return new Map([[0, 'duplicate']]);
  if (!(e instanceof MongoBulkWriteError)) return undefined;
  const refused = writeErrorsOf(e);
  if (refused.size === 0 || e.insertedCount + refused.size !== count) return undefined;
  return refused;
}

/**
 * The per-operation refusals a bulk write's error names (position → 'duplicate' or why), whether or not the
 * outcome of the other operations is known (for inserts, refusals() tells; other writes read back what landed).
 */
export function writeErrorsOf(e: unknown): Map<number, 'duplicate' | DocumentRefused> {
  if (!(e instanceof MongoBulkWriteError)) return new Map();
  const errors = (Array.isArray(e.writeErrors) ? e.writeErrors : [e.writeErrors]).filter((w) => w !== undefined);
  const why = (w: (typeof errors)[number]) => (w.code === 11000 || DUPLICATE_MESSAGE.test(w.errmsg ?? '') ? 'duplicate' : new DocumentRefused(`the database refused it: ${w.errmsg ?? `code ${w.code}`}`));
  return new Map(errors.map((w) => [w.index, why(w)]));
}

/** The positions of a batch insert's documents that unique indexes refused, when that is all that happened (see refusals). */
export function refusedAsDuplicates(e: unknown, count: number): Set<number> | undefined {
  const refused = refusals(e, count);
  if (!refused || [...refused.values()].some((r) => r !== 'duplicate')) return undefined;
  return new Set(refused.keys());
}

interface Token {
  _id: string;
  at: Date;
}

export class Claims {
  readonly collection: Collection<Token>;
  private filteredUpdates?: Promise<boolean>;

  constructor(private readonly db: Db, name = 'atomic_claims') {
    this.collection = db.collection<Token>(name);
  }

  /**
   * Whether `updateOne({_id, other: v})` is atomic and cheap on this server: true on MongoDB; false on
   * FerretDB v1, where the check is not atomic anyway and any filter other than `_id` alone scans the whole
   * collection (measured: one write per registry made a sweep quadratic). Asked once (buildInfo).
   */
  filteredUpdatesAreAtomic(): Promise<boolean> {
    this.filteredUpdates ??= this.db
      .admin()
      .command({ buildInfo: 1 })
      .then((info) => info.ferretdbVersion === undefined);
    // Not remembered when the server could not be asked (an outage): asked again next time.
    return this.filteredUpdates.catch(() => {
      this.filteredUpdates = undefined;
      return true;
    });
  }

  /** True for exactly one of any number of concurrent callers with the same key. */
  async claimOnce(key: string): Promise<boolean> {
    try {
      await this.collection.insertOne({ _id: key, at: new Date() });
      return true;
    } catch (e) {
      if (isDuplicateKey(e)) return false;
      throw e;
    }
  }

  /** Drops claims older than `maxAgeMs` (no TTL indexes on FerretDB v1). */
  async prune(maxAgeMs: number): Promise<number> {
    const r = await this.collection.deleteMany({ at: { $lt: new Date(Date.now() - maxAgeMs) } });
    return r.deletedCount;
  }
}
