/**
 * An express-rate-limit store whose counts are shared by every replica through the database, without a
 * database round trip on the request path.
 *
 * Fixed windows aligned to the epoch (`floor(now / windowMs)`), so every replica agrees on the window.
 * `increment` only touches memory: it adds one to the key's local count and answers with
 * `shared + in flight + local`, where `shared` is the total the database reported at the last sync. Every
 * `syncMs` one sync sends all local counts in one unordered bulkWrite (`$inc` on one document per key and
 * window, upserted) and reads the totals back with one `find`: two round trips per sync, however many
 * requests and keys it carries, and none when nothing happened.
 *
 * What this allows: a replica decides with the other replicas' counts as of its last sync, so a budget can be
 * exceeded by what the other replicas admitted for that key since then — at most about
 * (replicas − 1) × (requests per second per replica for the key) × (syncMs + one round trip). A replica
 * alone never over-admits. While the database is unreachable each replica keeps counting locally (the limit
 * then holds per replica) and retries the sync.
 *
 * FerretDB v1 has no TTL indexes: windows that ended are deleted explicitly, once per window per replica.
 */
import { MongoBulkWriteError, type Collection, type Db } from 'mongodb';
import type { ClientRateLimitInfo, Options, Store } from 'express-rate-limit';
import type { Logger } from '../logger';
import { ensureIndexes } from '../db/indexes';

export const RATE_LIMITS = 'rate_limits';

interface WindowRow {
  _id: string;
  /** The limiter (store prefix) and the client key. */
  limiter: string;
  key: string;
  window_start: Date;
  hits: number;
}

interface Count {
  windowStart: number;
  /** Total in the database as of the last sync (includes what this replica sent). */
  shared: number;
  /** Sent by the sync under way, not yet part of `shared`. */
  inFlight: number;
  /** Not yet sent. */
  local: number;
}

export class SharedWindowStore implements Store {
  readonly localKeys = false;
  readonly prefix: string;
  private windowMs = 60_000;
  private readonly counts = new Map<string, Count>();
  private readonly rows: Collection<WindowRow>;
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;
  private prunedWindow = 0;
  private failing = false;

  constructor(
    db: Db,
    private readonly opts: { prefix: string; syncMs: number; logger: Logger },
  ) {
    this.prefix = opts.prefix;
    this.rows = db.collection<WindowRow>(RATE_LIMITS);
  }

  init(options: Options): void {
    this.windowMs = options.windowMs;
    this.timer ??= setInterval(() => void this.sync(), this.opts.syncMs).unref();
  }

  private current(key: string): Count {
    const windowStart = Math.floor(Date.now() / this.windowMs) * this.windowMs;
    let c = this.counts.get(key);
    if (!c || c.windowStart !== windowStart) {
      c = { windowStart, shared: 0, inFlight: 0, local: 0 };
      this.counts.set(key, c);
    }
    return c;
  }

  private info(c: Count): ClientRateLimitInfo {
    return { totalHits: c.shared + c.inFlight + c.local, resetTime: new Date(c.windowStart + this.windowMs) };
  }

  private rowId(key: string, windowStart: number): string {
    return `${this.prefix}${key}|${windowStart}`;
  }

  get(key: string): ClientRateLimitInfo | undefined {
    const c = this.counts.get(key);
    return c ? this.info(c) : undefined;
  }

  increment(key: string): ClientRateLimitInfo {
    const c = this.current(key);
    c.local += 1;
    return this.info(c);
  }

  decrement(key: string): void {
    this.current(key).local -= 1;
  }

  async resetKey(key: string): Promise<void> {
    this.counts.delete(key);
    await this.rows.deleteMany({ limiter: this.prefix, key });
  }

  async resetAll(): Promise<void> {
    this.counts.clear();
    await this.rows.deleteMany({ limiter: this.prefix });
  }

  /** The index behind pruning; call once before serving. */
  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.rows, [{ key: { limiter: 1, window_start: 1 }, name: 'limiter_window' }]);
  }

  /** Sends local counts and reads the shared totals back. Never runs twice at once; never throws. */
  sync(): Promise<void> {
    this.syncing ??= this.syncOnce().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  private async syncOnce(): Promise<void> {
    const now = Date.now();
    const batch: Array<{ key: string; c: Count; n: number }> = [];
    for (const [key, c] of this.counts) {
      if (c.windowStart + this.windowMs <= now) {
        // The window is over: nothing left to decide with it (counts still unsent no longer matter).
        this.counts.delete(key);
        continue;
      }
      if (c.local === 0) continue;
      batch.push({ key, c, n: c.local });
      c.inFlight += c.local;
      c.local = 0;
    }
    if (batch.length === 0) return;
    const ids = batch.map((b) => this.rowId(b.key, b.c.windowStart));
    let failed = new Set<number>();
    try {
      await this.rows
        .bulkWrite(
          batch.map((b, i) => ({
            updateOne: {
              filter: { _id: ids[i]! },
              update: { $inc: { hits: b.n }, $setOnInsert: { limiter: this.prefix, key: b.key, window_start: new Date(b.c.windowStart) } },
              upsert: true,
            },
          })),
          { ordered: false },
        )
        .catch((e: unknown) => {
          // Unordered: the other writes went through. Only the failed ones are counted again next time.
          if (!(e instanceof MongoBulkWriteError)) throw e;
          failed = new Set([e.writeErrors].flat().map((w) => w.index));
        });
      const totals = new Map((await this.rows.find({ _id: { $in: ids } }).toArray()).map((r) => [r._id, r.hits]));
      batch.forEach((b, i) => {
        b.c.inFlight -= b.n;
        if (failed.has(i)) b.c.local += b.n;
        b.c.shared = Math.max(b.c.shared, totals.get(ids[i]!) ?? 0);
      });
      if (this.failing) this.opts.logger.info('rate limits: shared counters reachable again');
      this.failing = false;
    } catch (e) {
      for (const b of batch) {
        b.c.inFlight -= b.n;
        b.c.local += b.n;
      }
      if (!this.failing) this.opts.logger.warn('rate limits: cannot sync the shared counters; counting locally until the database answers', { err: e });
      this.failing = true;
      return;
    }
    await this.prune(now);
  }

  /** Deletes windows that ended (no TTL index on FerretDB v1); once per window per replica. */
  private async prune(now: number): Promise<void> {
    const windowStart = Math.floor(now / this.windowMs) * this.windowMs;
    if (this.prunedWindow === windowStart) return;
    this.prunedWindow = windowStart;
    await this.rows.deleteMany({ limiter: this.prefix, window_start: { $lt: new Date(windowStart - this.windowMs) } }).catch(() => undefined);
  }

  /** Stops the timer and sends what is still counted locally. */
  async shutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.sync();
  }
}
