/**
 * An express-rate-limit store whose counts are shared by every replica through the database, without a
 * database round trip on the request path.
 *
 * Fixed windows aligned to the epoch (`floor(now / windowMs)`), so every replica agrees on the window.
 * `increment` only touches memory: it adds one to this replica's count for the key and answers with
 * `others + mine`, where `others` is what the other replicas had counted at the last sync. Every `syncMs` one
 * sync writes this replica's changed counts in one unordered bulkWrite and reads every replica's counts for
 * those keys back with one `find`: two round trips per sync, however many requests and keys it carries, and
 * none when nothing happened.
 *
 * Each replica writes only its own document per key and window (`$set` of its count, upserted), never a
 * document another replica writes: no two writers ever race on one document, which matters on FerretDB v1
 * (its `$inc` loses updates under concurrency), and a retried or half-failed sync cannot count twice.
 *
 * What this allows: a replica decides with the other replicas' counts as of its last sync, so a budget can be
 * exceeded by what the other replicas admitted for that key since then — at most about
 * (replicas − 1) × (requests per second per replica for the key) × (syncMs + one round trip). A replica
 * alone never over-admits. While the database is unreachable each replica keeps counting locally (the limit
 * then holds per replica) and retries the sync.
 *
 * Near the limit that is not good enough (a probe budget of 12 once admitted 27 across three replicas), so
 * from `strictFrom` × limit on (what this replica knows of the total), a request is decided on the database:
 * this replica writes its count including the request, then reads every replica's count for the key, one
 * request per key at a time. Of two replicas deciding at once, each writes before it reads, so at least one
 * of them sees both requests: the budget can no longer be exceeded by requests decided that way, only by
 * what other replicas admitted before their own picture reached `strictFrom` (none, when it is 0: the probe
 * budget). The cost is one round trip per request in that range.
 *
 * FerretDB v1 has no TTL indexes: windows that ended are deleted explicitly, once per window per replica.
 */
import { randomUUID } from 'node:crypto';
import type { Collection, Db } from 'mongodb';
import type { ClientRateLimitInfo, Options, Store } from 'express-rate-limit';
import { ensureIndexes } from '../db/indexes';
import type { Logger } from '../logger';

export const RATE_LIMITS = 'rate_limits';

interface CountRow {
  /** `<limiter><key>|<window start>|<replica>` */
  _id: string;
  /** The limiter (store prefix). */
  limiter: string;
  key: string;
  window_start: Date;
  replica: string;
  hits: number;
}

interface Count {
  windowStart: number;
  /** Counted by this replica in this window. */
  mine: number;
  /** Of `mine`, what the database already holds. */
  stored: number;
  /** Counted by the other replicas, as of the last sync. */
  others: number;
}

export class SharedWindowStore implements Store {
  readonly localKeys = false;
  readonly prefix: string;
  private readonly replica = randomUUID();
  private windowMs = 60_000;
  private readonly counts = new Map<string, Count>();
  private readonly rows: Collection<CountRow>;
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;
  private prunedWindow = 0;
  private failing = false;
  private limit = Infinity;
  /** Per key: the decision on the database under way (one at a time per key). */
  private readonly deciding = new Map<string, Promise<unknown>>();

  constructor(
    db: Db,
    private readonly opts: { prefix: string; syncMs: number; logger: Logger; strictFrom?: number },
  ) {
    this.prefix = opts.prefix;
    this.rows = db.collection<CountRow>(RATE_LIMITS);
  }

  init(options: Options): void {
    this.windowMs = options.windowMs;
    if (typeof options.limit === 'number') this.limit = options.limit;
    this.timer ??= setInterval(() => void this.sync(), this.opts.syncMs).unref();
  }

  private current(key: string): Count {
    const windowStart = Math.floor(Date.now() / this.windowMs) * this.windowMs;
    let c = this.counts.get(key);
    if (!c || c.windowStart !== windowStart) {
      c = { windowStart, mine: 0, stored: 0, others: 0 };
      this.counts.set(key, c);
    }
    return c;
  }

  private info(c: Count): ClientRateLimitInfo {
    return { totalHits: c.others + c.mine, resetTime: new Date(c.windowStart + this.windowMs) };
  }

  get(key: string): ClientRateLimitInfo | undefined {
    const c = this.counts.get(key);
    return c ? this.info(c) : undefined;
  }

  increment(key: string): ClientRateLimitInfo | Promise<ClientRateLimitInfo> {
    const c = this.current(key);
    if (this.opts.strictFrom === undefined || c.others + c.mine < this.opts.strictFrom * this.limit) {
      c.mine += 1;
      return this.info(c);
    }
    const decided = (this.deciding.get(key) ?? Promise.resolve()).then(() => this.decide(key));
    const settled = decided.catch(() => undefined);
    this.deciding.set(key, settled);
    void settled.then(() => {
      if (this.deciding.get(key) === settled) this.deciding.delete(key);
    });
    return decided;
  }

  /** Counts one request of `key` with every replica's count read after this one's was written. */
  private async decide(key: string): Promise<ClientRateLimitInfo> {
    // A sync under way may write an older count of this key: it lands first.
    if (this.syncing) await this.syncing;
    const c = this.current(key);
    c.mine += 1;
    const mine = c.mine;
    try {
      await this.rows.updateOne({ _id: this.rowId(key, c) }, { $set: this.row(key, c, mine) }, { upsert: true });
      c.stored = mine;
      c.others = await this.othersOf(key, c);
      if (this.failing) this.opts.logger.info('rate limits: shared counters reachable again');
      this.failing = false;
    } catch (e) {
      if (!this.failing) this.opts.logger.warn('rate limits: cannot sync the shared counters; counting locally until the database answers', { err: e });
      this.failing = true;
    }
    return this.info(c);
  }

  private rowId(key: string, c: Count): string {
    return `${this.prefix}${key}|${c.windowStart}|${this.replica}`;
  }

  private row(key: string, c: Count, hits: number): Omit<CountRow, '_id'> {
    return { limiter: this.prefix, key, window_start: new Date(c.windowStart), replica: this.replica, hits };
  }

  /** What the other replicas counted for `key` in `c`'s window. */
  private async othersOf(key: string, c: Count, rows?: CountRow[]): Promise<number> {
    rows ??= await this.rows.find({ limiter: this.prefix, key }).toArray();
    return rows.filter((r) => r.key === key && r.replica !== this.replica && r.window_start.getTime() === c.windowStart).reduce((n, r) => n + r.hits, 0);
  }

  decrement(key: string): void {
    const c = this.current(key);
    c.mine = Math.max(0, c.mine - 1);
  }

  async resetKey(key: string): Promise<void> {
    this.counts.delete(key);
    await this.rows.deleteMany({ limiter: this.prefix, key });
  }

  async resetAll(): Promise<void> {
    this.counts.clear();
    await this.rows.deleteMany({ limiter: this.prefix });
  }

  /** The indexes behind the read-back and the pruning; call once before serving. */
  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.rows, [
      { key: { limiter: 1, key: 1 }, name: 'limiter_key' },
      { key: { limiter: 1, window_start: 1 }, name: 'limiter_window' },
    ]);
  }

  /** Writes this replica's changed counts and reads every replica's back. Never runs twice at once; never throws. */
  sync(): Promise<void> {
    this.syncing ??= this.syncOnce().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  private async syncOnce(): Promise<void> {
    const now = Date.now();
    const batch: Array<{ key: string; c: Count; mine: number }> = [];
    for (const [key, c] of this.counts) {
      // A window that is over decides nothing any more.
      if (c.windowStart + this.windowMs <= now) this.counts.delete(key);
      else if (c.mine !== c.stored) batch.push({ key, c, mine: c.mine });
    }
    if (batch.length === 0) return;
    try {
      await this.rows.bulkWrite(
        batch.map(({ key, c, mine }) => ({
          updateOne: { filter: { _id: this.rowId(key, c) }, update: { $set: this.row(key, c, mine) }, upsert: true },
        })),
        { ordered: false },
      );
      for (const b of batch) b.c.stored = b.mine;
      const rows = await this.rows.find({ limiter: this.prefix, key: { $in: batch.map((b) => b.key) } }).toArray();
      for (const { key, c } of batch) c.others = await this.othersOf(key, c, rows);
      if (this.failing) this.opts.logger.info('rate limits: shared counters reachable again');
      this.failing = false;
    } catch (e) {
      // Nothing to undo: what was written is this replica's own count, written again next time.
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
    await this.rows.deleteMany({ limiter: this.prefix, window_start: { $lt: new Date(windowStart) } }).catch(() => undefined);
  }

  /** Stops the timer and writes what is still counted only locally. */
  async shutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.sync();
  }
}
