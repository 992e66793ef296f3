/**
 * Atomic writes that hold on every backend this service runs on.
 *
 * Why this exists: FerretDB v1 (the embedded default) evaluates an update's filter and writes the whole
 * document back in two steps, so `updateOne({_id, version: v}, ...)`, `findOneAndUpdate` and even `$inc`
 * lose writes under concurrency (measured: 50 concurrent `$inc` → 4; 30 concurrent claims with
 * findOneAndUpdate → 11 winners). What it does enforce atomically is a unique index: of N concurrent
 * inserts of one `_id`, exactly one succeeds. Both primitives below are built on that, and are equally
 * correct on MongoDB, where the filtered update is atomic as well.
 *
 * - `claimOnce(key)`: exactly one caller wins a key (sweep claims, once-only work).
 * - `SequencedWriter.modify(id, plan)`: compare-and-set of one document. Every write of a document, from
 *   any module, goes through it: the writer of sequence s+1 must first win the token `<id>#<s+1>`, then
 *   writes with the filter `_seq: s`. A writer that lost re-reads and re-plans, so no change is lost.
 */
import { MongoServerError, type Collection, type Db, type Document, type Filter, type UpdateFilter } from 'mongodb';
import { setTimeout as sleep } from 'node:timers/promises';

export const SEQ = '_seq';

export function isDuplicateKey(e: unknown): boolean {
  return e instanceof MongoServerError && (e.code === 11000 || /UNIQUE constraint failed|duplicate key/i.test(e.message));
}

interface Token {
  _id: string;
  at: Date;
}

export class Claims {
  readonly collection: Collection<Token>;
  constructor(db: Db, name = 'atomic_claims') {
    this.collection = db.collection<Token>(name);
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

  async ageOf(key: string): Promise<number | undefined> {
    const t = await this.collection.findOne({ _id: key });
    return t ? Date.now() - t.at.getTime() : undefined;
  }

  async release(key: string): Promise<void> {
    await this.collection.deleteOne({ _id: key });
  }

  /** Drops claims older than `maxAgeMs` (no TTL indexes on FerretDB v1). */
  async prune(maxAgeMs: number): Promise<number> {
    const r = await this.collection.deleteMany({ at: { $lt: new Date(Date.now() - maxAgeMs) } });
    return r.deletedCount;
  }
}

/** What a planner asks for: nothing, an update of the document, or its deletion. */
export type WritePlan<R> =
  | { kind: 'none'; result: R }
  | { kind: 'update'; update: UpdateFilter<Document>; result: R }
  | { kind: 'delete'; result: R };

export interface SequencedWriterOptions {
  /**
   * A token older than this whose sequence never landed is skipped over: its holder died between the
   * claim and the write (nothing else runs between the two).
   */
  staleMs?: number;
  maxAttempts?: number;
}

export class ContendedError extends Error {}

export class SequencedWriter<T extends Document> {
  private readonly staleMs: number;
  private readonly maxAttempts: number;

  constructor(
    private readonly collection: Collection<T>,
    private readonly claims: Claims,
    opts: SequencedWriterOptions = {},
  ) {
    this.staleMs = opts.staleMs ?? 15_000;
    this.maxAttempts = opts.maxAttempts ?? 500;
  }

  private token(id: string, seq: number): string {
    return `${this.collection.collectionName}/${id}#${seq}`;
  }

  /**
   * Reads document `id`, asks `plan` what to write (it may throw, e.g. a validation error or a 412), and
   * writes it atomically. `plan` receives null when the document does not exist. On contention it is
   * called again with the fresh document.
   */
  async modify<R>(id: string, plan: (doc: T | null) => WritePlan<R> | Promise<WritePlan<R>>): Promise<R> {
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const doc = (await this.collection.findOne({ _id: id } as Filter<T>)) as T | null;
      const p = await plan(doc);
      if (p.kind === 'none' || !doc) return p.result;
      const seq = Number((doc as Document)[SEQ] ?? 0);
      const next = await this.claimNext(id, seq);
      if (next === undefined) {
        await sleep(Math.min(100, 1 + Math.random() * (attempt + 1) * 3));
        continue;
      }
      const filter = { _id: id, ...(seq === 0 ? { [SEQ]: { $in: [0, null] } } : { [SEQ]: seq }) } as unknown as Filter<T>;
      let applied: boolean;
      if (p.kind === 'delete') {
        applied = (await this.collection.deleteOne(filter)).deletedCount === 1;
      } else {
        const update = { ...p.update, $set: { ...((p.update.$set as Document) ?? {}), [SEQ]: next } } as unknown as UpdateFilter<T>;
        applied = (await this.collection.updateOne(filter, update)).matchedCount === 1;
      }
      if (applied) {
        void this.claims.release(this.token(id, seq)).catch(() => undefined);
        return p.result;
      }
    }
    throw new ContendedError(`document ${id} is contended; gave up after ${this.maxAttempts} attempts`);
  }

  /** Wins the token of the next sequence, skipping over tokens whose holders died; undefined when another writer holds it. */
  private async claimNext(id: string, seq: number): Promise<number | undefined> {
    for (let next = seq + 1; next <= seq + 5; next++) {
      if (await this.claims.claimOnce(this.token(id, next))) return next;
      const age = await this.claims.ageOf(this.token(id, next));
      if (age === undefined) {
        if (await this.claims.claimOnce(this.token(id, next))) return next;
        return undefined;
      }
      if (age < this.staleMs) return undefined;
    }
    return undefined;
  }
}
