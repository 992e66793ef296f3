/**
 * Work claiming for sweeps shared by several replicas (Backstage's refresh loop, adapted to FerretDB v1).
 *
 * A sweep has an id shared by every replica that fires the same cron tick (`health@<tick ISO time>`).
 * A registry is claimed for a sweep by inserting the lease row `{_id: "<sweep id>|<registry id>"}` into
 * `container_registry_leases`: the unique `_id` makes exactly one insert win, on MongoDB and on FerretDB v1
 * alike (FerretDB v1 evaluates update filters and writes in separate steps, so findOneAndUpdate is not a
 * safe arbiter there; see src/db/atomic.ts). The row carries the claim's ticket, its time and a deadline.
 * Results are written only while no newer claim exists for the registry (writer.ts), so a worker whose
 * lease was taken over cannot overwrite newer results.
 * Candidates are registries not yet written in this sweep (`_<kind>_swept`) and not under a live lease;
 * claims are made in small batches (one unordered insertMany per batch, sized to the free worker slots).
 */
import { randomUUID } from 'node:crypto';
import type { Collection, Db, Filter } from 'mongodb';
import { refusedAsDuplicates } from '../db/atomic';
import { ensureIndexes } from '../db/indexes';
import { COLLECTION, originPeer, type StoredRegistry } from '../registries/model';

export type SweepKind = 'health' | 'storage';

export const LEASES = 'container_registry_leases';

/** Service-owned fields of a registry document written with each result (never returned: they start with `_`). */
export function leaseFields(kind: SweepKind) {
  return { swept: `_${kind}_swept`, claimedAt: `_${kind}_claimed_at` } as const;
}

export interface LeaseRow {
  _id: string;
  kind: SweepKind;
  sweep_id: string;
  registry_id: string;
  ticket: string;
  owner: string;
  claimed_at: Date;
  expires_at: Date;
}

/** A won claim: what the worker passes to the writer. */
export interface Lease {
  sweepId: string;
  ticket: string;
  claimedAt: Date;
  expiresAt: Date;
}

export interface Claim {
  doc: StoredRegistry;
  lease: Lease;
}

/** Claims of one sweep made by this replica. */
export class SweepClaimer {
  /** Registry ids this replica has still to try in this sweep (read once, at its first claim). */
  private queue?: string[];
  private readonly won: string[] = [];
  private exhausted = false;

  constructor(
    private readonly store: LeaseStore,
    private readonly kind: SweepKind,
    readonly sweepId: string,
    private readonly leaseMs: number,
  ) {}

  get done(): boolean {
    return this.exhausted;
  }

  /** Up to `max` registries claimed for this sweep; an empty array means nothing is left to claim. */
  async claim(max: number): Promise<Claim[]> {
    if (!this.queue) {
      // One scan of ids per sweep and replica: FerretDB v1 scans the collection for any filter but `_id`
      // alone, so re-reading candidates for every batch made sweeps quadratic in the number of registries.
      // Registries created after this scan wait for the next sweep.
      const f = leaseFields(this.kind);
      const busy = new Set(await this.store.leased(this.kind));
      const rows = await this.store.registries
        .find({ [f.swept]: { $ne: this.sweepId } } as Filter<StoredRegistry>, { projection: { _id: 1, 'container_registry_origin.peer': 1 }, maxTimeMS: 60_000 })
        .toArray();
      // Replicas scan the same ids: shuffled, they mostly try different ones first.
      // Entries mirrored from a peer (SPEC 15) are the peer's to probe.
      this.queue = shuffle(rows.filter((r) => originPeer(r) === undefined).map((r) => r._id).filter((id) => !busy.has(id)));
    }
    while (this.queue.length > 0) {
      const won = await this.insertLeases(this.queue.splice(0, max));
      if (won.length === 0) continue;
      // Each won registry is read by `_id`, the one lookup FerretDB v1 serves from an index.
      const docs = await Promise.all(won.map((row) => this.store.registries.findOne({ _id: row.registry_id } as Filter<StoredRegistry>)));
      const claims: Claim[] = [];
      won.forEach((row, i) => {
        this.won.push(row._id);
        const doc = docs[i];
        // An entry deleted since the scan is skipped; its lease ends with release().
        if (doc) claims.push({ doc, lease: { sweepId: this.sweepId, ticket: row.ticket, claimedAt: row.claimed_at, expiresAt: row.expires_at } });
      });
      if (claims.length > 0) return claims;
    }
    this.exhausted = true;
    return [];
  }

  /** Ends this replica's leases of the sweep (the rows stay, so nobody claims them again in this sweep). */
  async release(): Promise<void> {
    if (this.won.length > 0) await this.store.leases.updateMany({ _id: { $in: this.won } }, { $set: { expires_at: new Date(0) } });
  }

  private async insertLeases(ids: string[]): Promise<LeaseRow[]> {
    const now = new Date();
    const rows: LeaseRow[] = ids.map((id) => ({
      _id: `${this.sweepId}|${id}`,
      kind: this.kind,
      sweep_id: this.sweepId,
      registry_id: id,
      ticket: randomUUID(),
      owner: this.store.owner,
      claimed_at: now,
      expires_at: new Date(now.getTime() + this.leaseMs),
    }));
    const lost = new Set<number>();
    try {
      await this.store.leases.insertMany(rows, { ordered: false });
    } catch (e) {
      const refused = refusedAsDuplicates(e, rows.length);
      if (!refused) throw e;
      for (const i of refused) lost.add(i);
    }
    return rows.filter((_, i) => !lost.has(i));
  }
}

export class LeaseStore {
  readonly registries: Collection<StoredRegistry>;
  readonly leases: Collection<LeaseRow>;

  constructor(db: Db, readonly owner: string = randomUUID()) {
    this.registries = db.collection<StoredRegistry>(COLLECTION);
    this.leases = db.collection<LeaseRow>(LEASES);
  }

  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.leases, [
      { key: { registry_id: 1, claimed_at: 1 }, name: 'registry_claimed_at' },
      { key: { expires_at: 1 }, name: 'expires_at' },
    ]);
  }

  sweep(kind: SweepKind, sweepId: string, leaseMs: number): SweepClaimer {
    return new SweepClaimer(this, kind, sweepId, leaseMs);
  }

  /** Registries under a live lease of `kind` (being worked on by some replica). */
  async leased(kind: SweepKind): Promise<string[]> {
    const rows = await this.leases.find({ kind, expires_at: { $gt: new Date() } }, { projection: { registry_id: 1 } }).toArray();
    return rows.map((r) => r.registry_id);
  }

  /** Live leases of sweep `sweepId` (replicas still working on it). */
  async live(kind: SweepKind, sweepId: string): Promise<number> {
    return this.leases.countDocuments({ kind, sweep_id: sweepId, expires_at: { $gt: new Date() } });
  }

  /**
   * True when registry `id` was claimed after `lease` (by any replica, in any sweep of that kind). While a
   * lease is live nobody else claims its registry (candidates exclude live leases), so only a lease that
   * ran out needs the lookup.
   */
  async supersededBy(kind: SweepKind, id: string, lease: Lease): Promise<boolean> {
    if (Date.now() < lease.expiresAt.getTime()) return false;
    const newer = await this.leases.findOne({ kind, registry_id: id, claimed_at: { $gt: lease.claimedAt } }, { projection: { _id: 1 } });
    return newer !== null;
  }

  /** Lease rows are only needed while their sweep runs; drop ended ones claimed more than `maxAgeMs` ago. */
  async prune(maxAgeMs: number): Promise<number> {
    const now = Date.now();
    const r = await this.leases.deleteMany({ claimed_at: { $lt: new Date(now - maxAgeMs) }, expires_at: { $lt: new Date(now) } });
    return r.deletedCount;
  }
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
