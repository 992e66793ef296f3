/**
 * One replica at a time follows each peer: a lease built from unique inserts, because FerretDB v1 has no
 * atomic filtered update (src/db/atomic.ts). Leases of a peer are numbered generations, one document each:
 * `{_id: "<peer>|<gen>", peer, gen, owner, expires_at}`. The holder of the highest generation renews it by
 * `_id` (it is the only writer of that document). Another replica takes over when the highest generation
 * has expired (its holder died or hung) by inserting generation + 1: the unique `_id` lets exactly one
 * insert win. A holder that finds a higher generation than its own has lost the lease and stops.
 */
import type { Collection, Db } from 'mongodb';
import { isDuplicateKey } from '../db/atomic';
import { ensureIndexes } from '../db/indexes';

export const PEER_LEASES = 'federation_leases';

export interface PeerLeaseRow {
  _id: string;
  peer: string;
  gen: number;
  owner: string;
  expires_at: Date;
}

export class PeerLeases {
  readonly collection: Collection<PeerLeaseRow>;

  constructor(db: Db, readonly owner: string, readonly ttlMs: number) {
    this.collection = db.collection<PeerLeaseRow>(PEER_LEASES);
  }

  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.collection, [{ key: { peer: 1, gen: 1 }, name: 'peer_gen' }]);
  }

  /** The highest generation of `peer`'s lease, if any. */
  async top(peer: string): Promise<PeerLeaseRow | null> {
    return (await this.collection.find({ peer }).sort({ gen: -1 }).limit(1).toArray())[0] ?? null;
  }

  /** The live holder of `peer`'s lease, if any. */
  async holder(peer: string): Promise<string | undefined> {
    const t = await this.top(peer);
    return t && t.expires_at.getTime() > Date.now() ? t.owner : undefined;
  }

  /** The generation this replica holds after the call (taking the lease over when it is free), or undefined. */
  async acquire(peer: string): Promise<number | undefined> {
    const t = await this.top(peer);
    if (t && t.owner === this.owner && t.expires_at.getTime() > Date.now()) return t.gen;
    if (t && t.expires_at.getTime() > Date.now()) return undefined;
    const gen = (t?.gen ?? 0) + 1;
    try {
      await this.collection.insertOne({ _id: `${peer}|${gen}`, peer, gen, owner: this.owner, expires_at: new Date(Date.now() + this.ttlMs) });
    } catch (e) {
      if (isDuplicateKey(e)) return undefined;
      throw e;
    }
    // Generations two behind are nobody's any more.
    await this.collection.deleteMany({ peer, gen: { $lt: gen - 1 } }).catch(() => undefined);
    return gen;
  }

  /** Extends generation `gen`; false when it was taken over meanwhile (a higher generation exists). */
  async renew(peer: string, gen: number): Promise<boolean> {
    await this.collection.updateOne({ _id: `${peer}|${gen}` }, { $set: { expires_at: new Date(Date.now() + this.ttlMs) } });
    const t = await this.top(peer);
    return t?.gen === gen && t.owner === this.owner;
  }

  /** Gives generation `gen` up (at shutdown), so another replica takes over at once. */
  async release(peer: string, gen: number): Promise<void> {
    await this.collection.updateOne({ _id: `${peer}|${gen}`, owner: this.owner }, { $set: { expires_at: new Date(0) } });
  }
}
