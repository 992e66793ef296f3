/**
 * Work claiming for sweeps shared by several replicas (Backstage's refresh loop, adapted to FerretDB v1).
 *
 * A sweep has an id shared by every replica that fires the same cron tick (`health@<tick ISO time>`). A
 * registry is claimed for a sweep by winning the lease term named by the sweep id (src/db/lease.ts `claim`:
 * one unique insert, so exactly one replica wins each registry per sweep, on MongoDB and FerretDB v1 alike).
 * The term carries its time and a deadline. Results are written only while no later claim of the registry
 * exists (writer.ts, through the lease's fence), so a worker whose lease was taken over cannot overwrite newer
 * results. Candidates are registries not yet written in this sweep (`_<kind>_swept`) and not under a live
 * lease; claims are made in small batches (one unordered insertMany per batch, sized to the free worker slots).
 */
import type { Collection, Db, Filter } from 'mongodb';
import { Leases, type Held } from '../db/lease';
import { COLLECTION, originPeer, type StoredRegistry } from '../registries/model';

export type SweepKind = 'health' | 'storage';

/** Service-owned fields of a registry document written with each result (never returned: they start with `_`). */
export function leaseFields(kind: SweepKind) {
  return { swept: `_${kind}_swept`, claimedAt: `_${kind}_claimed_at` } as const;
}

/** A won claim: what the worker passes to the writer. */
export interface Lease {
  sweepId: string;
  /** Unique for every claim ever made. */
  ticket: string;
  claimedAt: Date;
  expiresAt: Date;
  held: Held;
}

export interface Claim {
  doc: StoredRegistry;
  lease: Lease;
}

/** Claims of one sweep made by this replica. */
export class SweepClaimer {
  /** Registry ids this replica has still to try in this sweep (read once, at its first claim). */
  private queue?: string[];
  private readonly won: Held[] = [];
  private exhausted = false;

  constructor(
    private readonly store: LeaseStore,
    private readonly kind: SweepKind,
    readonly sweepId: string,
    private readonly leaseMs: number,
  ) {}

  private get leases(): Leases {
    return this.store.leasesOf(this.kind);
  }

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
      const won = await this.leases.claim(this.queue.splice(0, max), this.sweepId, this.leaseMs);
      if (won.length === 0) continue;
      const docs = await Promise.all(won.map((h) => this.store.current(h.key)));
      const claims: Claim[] = [];
      won.forEach((h, i) => {
        this.won.push(h);
        const doc = docs[i];
        // An entry deleted since the scan is skipped; its lease ends with release().
        if (doc) claims.push({ doc, lease: { sweepId: this.sweepId, ticket: h.id, claimedAt: h.acquiredAt, expiresAt: h.expiresAt, held: h } });
      });
      if (claims.length > 0) return claims;
    }
    this.exhausted = true;
    return [];
  }

  /** Ends this replica's leases of the sweep (the terms stay, so nobody claims them again in this sweep). */
  async release(): Promise<void> {
    await this.leases.release(...this.won);
  }
}

export class LeaseStore {
  readonly registries: Collection<StoredRegistry>;
  private readonly byKind: Record<SweepKind, Leases>;

  /**
   * `known`: the latest state of an entry this replica's feed has read (EntryWriter.latestKnown; `doc`
   * undefined: deleted), so that a claim costs no read. A state the feed has not caught up with is harmless:
   * the result's write follows the revision it was planned on, and re-plans when a later one exists.
   */
  constructor(
    db: Db,
    private readonly known?: (id: string) => { doc?: StoredRegistry } | undefined,
  ) {
    this.registries = db.collection<StoredRegistry>(COLLECTION);
    // Every claim names its own lease time (the sweep's deadline); the default is never used.
    this.byKind = { health: new Leases(db, 'sweep-health', 60_000), storage: new Leases(db, 'sweep-storage', 60_000) };
  }

  leasesOf(kind: SweepKind): Leases {
    return this.byKind[kind];
  }

  async ensureIndexes(): Promise<void> {
    await this.byKind.health.ensureIndexes();
  }

  /** Entry `id` as this replica knows it (its feed), else as stored (by `_id`, the one lookup FerretDB v1 serves from an index); null when gone. */
  async current(id: string): Promise<StoredRegistry | null> {
    const known = this.known?.(id);
    if (known) return known.doc ? ({ ...known.doc } as StoredRegistry) : null;
    return this.registries.findOne({ _id: id } as Filter<StoredRegistry>);
  }

  sweep(kind: SweepKind, sweepId: string, leaseMs: number): SweepClaimer {
    return new SweepClaimer(this, kind, sweepId, leaseMs);
  }

  /** Registries under a live lease of `kind` (being worked on by some replica). */
  leased(kind: SweepKind): Promise<string[]> {
    return this.byKind[kind].liveKeys();
  }

  /** Live leases of sweep `sweepId` (replicas still working on it). */
  async live(kind: SweepKind, sweepId: string): Promise<number> {
    return (await this.byKind[kind].liveKeys(sweepId)).length;
  }

  /** True when registry `id` was claimed after `lease` (by any replica, in any sweep of that kind): the lease's fence. */
  async supersededBy(kind: SweepKind, lease: Lease): Promise<boolean> {
    return !(await this.byKind[kind].isCurrent(lease.held));
  }

  /** Claims are only needed while their sweep runs; drop ended ones made more than `maxAgeMs` ago. */
  async prune(maxAgeMs: number): Promise<number> {
    return (await this.byKind.health.prune(maxAgeMs)) + (await this.byKind.storage.prune(maxAgeMs));
  }
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
