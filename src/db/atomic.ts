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
/** No attempt writes a plan read longer ago than this. */
const MAX_ATTEMPT_MS = 10_000;
/** Tokens are kept this long: far longer than any attempt may take, so none can be won twice. */
export const TOKEN_RETENTION_MS = 15 * 60_000;

export function isDuplicateKey(e: unknown): boolean {
  return e instanceof MongoServerError && (e.code === 11000 || /UNIQUE constraint failed|duplicate key/i.test(e.message));
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

  async ageOf(key: string): Promise<number | undefined> {
    const t = await this.collection.findOne({ _id: key });
    return t ? Date.now() - t.at.getTime() : undefined;
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
  /**
   * How long one modify() may keep trying before it gives up with ContendedError (a 503 for clients): a
   * token orphaned by a write that failed (e.g. the database went away) blocks its document until it is
   * stale, and a request must get an answer in the meantime rather than hang.
   */
  deadlineMs?: number;
}

export class ContendedError extends Error {}

export class SequencedWriter<T extends Document> {
  private readonly staleMs: number;
  private readonly maxAttempts: number;
  private readonly deadlineMs: number;

  constructor(
    private readonly collection: Collection<T>,
    private readonly claims: Claims,
    opts: SequencedWriterOptions = {},
  ) {
    this.staleMs = opts.staleMs ?? 30_000;
    this.maxAttempts = opts.maxAttempts ?? 500;
    this.deadlineMs = opts.deadlineMs ?? 8_000;
  }

  /**
   * The token of sequence `seq` of document `id`. `created_at` names the document's incarnation, so a
   * document deleted and created again under the same id does not meet the tokens of its predecessor.
   */
  private token(id: string, seq: number, doc: Document): string {
    return `${this.collection.collectionName}/${id}@${String(doc.created_at ?? '')}#${seq}`;
  }

  /**
   * Reads document `id`, asks `plan` what to write (it may throw, e.g. a validation error or a 412), and
   * writes it atomically. `plan` receives null when the document does not exist. On contention it is
   * called again with the fresh document.
   * `known`: the document as the caller read it at `readAt` (a sweep reads each claimed entry before the
   * probe), used for the first attempt instead of a read when it is younger than half of MAX_ATTEMPT_MS
   * (so that the stalled-attempt guard below does not orphan a token). If it is no longer current, the
   * token of its next sequence is already taken and the attempt starts again with a read.
   */
  async modify<R>(id: string, plan: (doc: T | null) => WritePlan<R> | Promise<WritePlan<R>>, known?: { doc: T | null; readAt: number }): Promise<R> {
    const giveUpAt = Date.now() + this.deadlineMs;
    for (let attempt = 0; attempt < this.maxAttempts && Date.now() < giveUpAt; attempt++) {
      const reuse = attempt === 0 && known !== undefined && Date.now() - known.readAt < MAX_ATTEMPT_MS / 2;
      const readAt = reuse ? known.readAt : Date.now();
      const doc = reuse ? known.doc : ((await this.collection.findOne({ _id: id } as Filter<T>)) as T | null);
      const p = await plan(doc);
      if (p.kind === 'none' || !doc) return p.result;
      const seq = Number((doc as Document)[SEQ] ?? 0);
      const next = await this.claimNext(id, seq, doc);
      if (next === undefined) {
        await sleep(Math.min(100, 1 + Math.random() * (attempt + 1) * 3));
        continue;
      }
      // An attempt that took this long (a stalled process) starts again rather than write an old plan.
      if (Date.now() - readAt > MAX_ATTEMPT_MS) continue;
      // Winning the token already excludes every other writer of seq+1; where the server can check it
      // atomically and cheaply, the filter on _seq also fences a holder whose stale token was skipped.
      const fenced = await this.claims.filteredUpdatesAreAtomic();
      const filter = (
        !fenced ? { _id: id } : { _id: id, ...(seq === 0 ? { [SEQ]: { $in: [0, null] } } : { [SEQ]: seq }) }
      ) as unknown as Filter<T>;
      let applied: boolean;
      if (p.kind === 'delete') {
        applied = (await this.collection.deleteOne(filter)).deletedCount === 1;
      } else {
        const update = { ...p.update, $set: { ...((p.update.$set as Document) ?? {}), [SEQ]: next } } as unknown as UpdateFilter<T>;
        applied = (await this.collection.updateOne(filter, update)).matchedCount === 1;
      }
      // Tokens are never released (a released token could be won again by a writer that read an older
      // sequence); Claims.prune drops them once no attempt can be that old.
      if (applied) return p.result;
    }
    throw new ContendedError(`document ${id} is contended; gave up after ${this.maxAttempts} attempts or ${this.deadlineMs} ms`);
  }

  /** Wins the token of the next sequence, skipping over tokens whose holders died; undefined when another writer holds it. */
  private async claimNext(id: string, seq: number, doc: Document): Promise<number | undefined> {
    for (let next = seq + 1; next <= seq + 5; next++) {
      const token = this.token(id, next, doc);
      if (await this.claims.claimOnce(token)) return next;
      const age = await this.claims.ageOf(token);
      if (age === undefined) {
        if (await this.claims.claimOnce(token)) return next;
        return undefined;
      }
      if (age < this.staleMs) return undefined;
    }
    return undefined;
  }
}
