/**
 * Leases: one holder at a time per key, with an expiry, built from unique inserts only. FerretDB v1 has no
 * atomic filtered update (src/db/atomic.ts), so a lease cannot be a document that replicas compare-and-set.
 * Instead a key's lease is held in terms, one document each, and a term is won by inserting its document:
 *
 *   { _id: "<scope>|<key>|<term>", scope, key, term, gen, owner, acquired_at, expires_at }
 *
 * Of any number of replicas inserting the same term, exactly one wins (the unique `_id`). Terms come in two
 * kinds, by who names them:
 * - Generations (`acquire`): the next term of a key is its highest generation + 1, taken when there is none
 *   or the highest expired (its holder died, hung, or released it). For holders that keep a key for long:
 *   one follower per peer, one deliverer per webhook subscription.
 * - Named terms (`claim`): the caller names the term, the same for every replica (a sweep's id): each key is
 *   won once per term, with no read before the insert. For work handed out once per period: sweep claims.
 *
 * - Renew: the holder extends its own document by `_id` (it is the only writer of that document), then checks
 *   that no later term of the key exists: one means it was taken over while it stalled, and it stops.
 * - Fence: a holder whose lease expired checks that no later term exists before acting on it (`isCurrent`);
 *   a live lease cannot have been taken over (nobody takes a live key).
 * - Release: the holder expires its document, so the next holder does not wait for the expiry.
 *
 * A holder that stalls past its expiry may overlap its successor until its next renew or fence check; every
 * user of leases here tolerates that (webhook delivery is at-least-once, a follower's writes are idempotent,
 * a sweep result is fenced in the entry itself). Users: sweep claims (src/health/leases.ts), one deliverer per
 * webhook subscription (src/events/deliverer.ts), one follower per peer (src/federation/follower.ts), one
 * storage refresh per entry (named terms: src/health/refresh-turns.ts), one writer of mirror drift
 * (src/inventory/drift-keeper.ts).
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Collection, Db, Filter } from 'mongodb';
import { isDuplicateKey, refusedAsDuplicates } from './atomic';
import { ensureIndexes } from './indexes';

export const LEASES = 'leases';

/** A new holder identity, as GET /peers shows it: host:pid:nonce (one per service instance and scope). */
export function newLeaseOwner(): string {
  return `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
}

export interface LeaseRow {
  _id: string;
  scope: string;
  key: string;
  /** The term's name: its generation for `acquire`, the caller's name for `claim`. */
  term: string;
  /** The generation (`acquire`); 0 for a named term. */
  gen: number;
  owner: string;
  acquired_at: Date;
  expires_at: Date;
}

/** A term this instance holds. */
export interface Held {
  key: string;
  term: string;
  gen: number;
  /** The term's document id: unique for every acquisition ever made. */
  id: string;
  acquiredAt: Date;
  expiresAt: Date;
}

export class Leases {
  readonly collection: Collection<LeaseRow>;

  constructor(
    db: Db,
    /** What the keys name (sweep claims, a webhook subscription, a peer): one scope per user. */
    readonly scope: string,
    readonly ttlMs: number,
    /** The holder's identity: distinct for every instance (replicas in one process included). */
    readonly owner: string = newLeaseOwner(),
  ) {
    this.collection = db.collection<LeaseRow>(LEASES);
  }

  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.collection, [
      { key: { scope: 1, key: 1, gen: 1 }, name: 'scope_key_gen' },
      { key: { scope: 1, key: 1, acquired_at: 1 }, name: 'scope_key_acquired_at' },
      { key: { scope: 1, expires_at: 1 }, name: 'scope_expires_at' },
    ]);
  }

  private row(key: string, term: string, gen: number, ttlMs: number, now = new Date()): LeaseRow {
    return { _id: `${this.scope}|${key}|${term}`, scope: this.scope, key, term, gen, owner: this.owner, acquired_at: now, expires_at: new Date(now.getTime() + ttlMs) };
  }

  /** The key's latest term: its highest generation, or its latest named term. */
  private async latest(key: string): Promise<LeaseRow | undefined> {
    const [top] = await this.collection.find({ scope: this.scope, key }).sort({ gen: -1, acquired_at: -1 }).limit(1).toArray();
    return top;
  }

  /** Term `term` of `key`, if anyone won it (one read by `_id`). */
  async term(key: string, term: string): Promise<LeaseRow | null> {
    return this.collection.findOne({ _id: `${this.scope}|${key}|${term}` });
  }

  /** The owner of `key`'s live lease, if any. */
  async holder(key: string): Promise<string | undefined> {
    const top = await this.latest(key);
    return top && top.expires_at.getTime() > Date.now() ? top.owner : undefined;
  }

  /** Takes `key`'s next generation when the lease is free (or already this instance's); undefined when another holds it or won it. */
  async acquire(key: string): Promise<Held | undefined> {
    const top = await this.latest(key);
    if (top && top.expires_at.getTime() > Date.now()) return top.owner === this.owner ? held(top) : undefined;
    const gen = (top?.gen ?? 0) + 1;
    const [won] = await this.insert([this.row(key, String(gen), gen, this.ttlMs)]);
    // Generations two behind are nobody's any more.
    if (won) await this.collection.deleteMany({ scope: this.scope, key, gen: { $lt: gen - 1 } }).catch(() => undefined);
    return won;
  }

  /**
   * Wins term `term` of each of `keys` that nobody won before (one insert for all, no read): sweep claims,
   * where every replica names the same term (the sweep's id), so each key is handed out once per term.
   * Keys another term holds live are the caller's to leave out (`liveKeys`).
   */
  async claim(keys: readonly string[], term: string, ttlMs = this.ttlMs): Promise<Held[]> {
    const now = new Date();
    return this.insert(keys.map((key) => this.row(key, term, 0, ttlMs, now)));
  }

  private async insert(rows: LeaseRow[]): Promise<Held[]> {
    if (rows.length === 0) return [];
    let lost = new Set<number>();
    try {
      if (rows.length === 1) await this.collection.insertOne(rows[0]!);
      else await this.collection.insertMany(rows, { ordered: false });
    } catch (e) {
      const refused = rows.length === 1 ? (isDuplicateKey(e) ? new Set([0]) : undefined) : refusedAsDuplicates(e, rows.length);
      if (!refused) throw e;
      lost = refused;
    }
    return rows.filter((_, i) => !lost.has(i)).map(held);
  }

  /** Extends `h`; false when a higher generation exists (taken over while this holder stalled). */
  async renew(h: Held): Promise<boolean> {
    const expiresAt = new Date(Date.now() + this.ttlMs);
    await this.collection.updateOne({ _id: h.id }, { $set: { expires_at: expiresAt } });
    if (!(await this.isTop(h))) return false;
    h.expiresAt = expiresAt;
    return true;
  }

  /** True unless `h` expired and a later term followed it: a holder checks this before acting on an old lease. */
  async isCurrent(h: Held): Promise<boolean> {
    return Date.now() < h.expiresAt.getTime() || this.isTop(h);
  }

  private async isTop(h: Held): Promise<boolean> {
    const later = h.gen > 0 ? { gen: { $gt: h.gen } } : { acquired_at: { $gt: h.acquiredAt } };
    return (await this.collection.findOne({ scope: this.scope, key: h.key, ...later } as Filter<LeaseRow>, { projection: { _id: 1 } })) === null;
  }

  /** Ends held leases now (their documents stay, with their notes, until pruned). */
  async release(...hs: Held[]): Promise<void> {
    if (hs.length === 0) return;
    const ids = hs.map((h) => h.id);
    await this.collection.updateMany({ _id: { $in: ids }, owner: this.owner } as Filter<LeaseRow>, { $set: { expires_at: new Date(0) } });
  }

  /** Keys under a live lease (optionally of one named term). */
  async liveKeys(term?: string): Promise<string[]> {
    const rows = await this.collection.find({ scope: this.scope, expires_at: { $gt: new Date() }, ...(term !== undefined ? { term } : {}) }, { projection: { key: 1 } }).toArray();
    return rows.map((r) => r.key);
  }

  /** Drops generations that ended and were acquired more than `maxAgeMs` ago (no TTL indexes on FerretDB v1). */
  async prune(maxAgeMs: number): Promise<number> {
    const now = Date.now();
    const r = await this.collection.deleteMany({ scope: this.scope, acquired_at: { $lt: new Date(now - maxAgeMs) }, expires_at: { $lt: new Date(now) } });
    return r.deletedCount;
  }
}

/**
 * One key's lease held across the turns of a loop: `hold()` answers 'acquired' when this call won it (state
 * must be reloaded), 'held' while it holds it (renewed once half its time is gone), 'lost' when another
 * process holds it. `release()` gives it up.
 */
export class LeaseHolder {
  private h?: Held;

  constructor(
    private readonly leases: Leases,
    readonly key: string,
  ) {}

  get holding(): boolean {
    return this.h !== undefined && Date.now() < this.h.expiresAt.getTime();
  }

  async hold(): Promise<'acquired' | 'held' | 'lost'> {
    const h = this.h;
    if (h) {
      if (h.expiresAt.getTime() - Date.now() > this.leases.ttlMs / 2) return 'held';
      if (await this.leases.renew(h)) return 'held';
      this.h = undefined;
      return 'lost';
    }
    this.h = await this.leases.acquire(this.key);
    return this.h ? 'acquired' : 'lost';
  }

  async release(): Promise<void> {
    const h = this.h;
    this.h = undefined;
    if (h) await this.leases.release(h);
  }
}

function held(r: LeaseRow): Held {
  return { key: r.key, term: r.term, gen: r.gen, id: r._id, acquiredAt: r.acquired_at, expiresAt: r.expires_at };
}
