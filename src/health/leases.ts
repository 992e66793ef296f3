/**
 * Work claiming for sweeps shared by several replicas (Backstage's refresh loop, adapted to FerretDB v1).
 *
 * A sweep has an id shared by every replica that fires the same cron tick (`health@<tick ISO time>`).
 * A registry is claimed for a sweep by inserting `{_id: "<sweep id>|<registry id>"}` into
 * `container_registry_leases`: the unique `_id` makes exactly one insert win, on MongoDB and on FerretDB v1
 * alike (FerretDB v1 evaluates update filters and writes in separate steps, so a conditional update alone
 * is not a safe arbiter there). The winner then stamps the registry with a fresh ticket, the sweep id and
 * a lease deadline; results are written only while that ticket still matches (writer.ts).
 * Candidates are registries not yet swept in this sweep whose lease (if any) has run out; claims are made in
 * small batches, one insertMany (unordered) per batch, sized to the free worker slots.
 */
import { randomUUID } from 'node:crypto';
import { MongoBulkWriteError, MongoServerError, type Collection, type Db, type Filter } from 'mongodb';
import { COLLECTION, type StoredRegistry } from '../registries/model';
import { ensureIndexes } from '../db/indexes';

export type SweepKind = 'health' | 'storage';

export const LEASES = 'container_registry_leases';

/** Service-owned fields of a registry document for one kind of sweep (never returned: they start with `_`). */
export function leaseFields(kind: SweepKind) {
  return { swept: `_${kind}_swept`, ticket: `_${kind}_ticket`, leaseUntil: `_${kind}_lease_until` } as const;
}

interface LeaseRow {
  _id: string;
  sweep_id: string;
  registry_id: string;
  ticket: string;
  owner: string;
  claimed_at: Date;
}

export interface Claim {
  doc: StoredRegistry;
  ticket: string;
}

/** Claims of one sweep made by this replica. */
export class SweepClaimer {
  /** Registries this replica already tried in this sweep (won or lost); never retried in the same sweep. */
  private readonly tried = new Set<string>();
  private exhausted = false;

  constructor(
    private readonly registries: Collection<StoredRegistry>,
    private readonly leases: Collection<LeaseRow>,
    private readonly kind: SweepKind,
    readonly sweepId: string,
    private readonly owner: string,
    private readonly leaseMs: number,
  ) {}

  get done(): boolean {
    return this.exhausted;
  }

  /** Up to `max` registries claimed for this sweep; an empty array means nothing is left to claim. */
  async claim(max: number): Promise<Claim[]> {
    const f = leaseFields(this.kind);
    for (;;) {
      const now = new Date();
      const candidates = await this.registries
        .find(
          {
            _id: { $nin: [...this.tried] },
            [f.swept]: { $ne: this.sweepId },
            $or: [{ [f.leaseUntil]: { $exists: false } }, { [f.leaseUntil]: { $lte: now } }],
          } as Filter<StoredRegistry>,
          { projection: { _id: 1 }, limit: max * 4, maxTimeMS: 10_000 },
        )
        .toArray();
      if (candidates.length === 0) {
        this.exhausted = true;
        return [];
      }
      // Replicas see the same candidates: shuffle so they mostly try different ones.
      const ids = shuffle(candidates.map((c) => c._id)).slice(0, max);
      for (const id of ids) this.tried.add(id);
      const won = await this.insertClaims(ids, now);
      if (won.length === 0) continue;
      const claims: Claim[] = [];
      for (const { id, ticket } of won) {
        const doc = await this.registries.findOneAndUpdate(
          { _id: id } as Filter<StoredRegistry>,
          { $set: { [f.swept]: this.sweepId, [f.ticket]: ticket, [f.leaseUntil]: new Date(Date.now() + this.leaseMs) } },
          { returnDocument: 'after', maxTimeMS: 10_000 },
        );
        if (doc) claims.push({ doc, ticket }); // null: deleted since it was listed
      }
      if (claims.length > 0) return claims;
    }
  }

  private async insertClaims(ids: string[], now: Date): Promise<Array<{ id: string; ticket: string }>> {
    const rows: LeaseRow[] = ids.map((id) => ({
      _id: `${this.sweepId}|${id}`,
      sweep_id: this.sweepId,
      registry_id: id,
      ticket: randomUUID(),
      owner: this.owner,
      claimed_at: now,
    }));
    const lost = new Set<number>();
    try {
      await this.leases.insertMany(rows, { ordered: false });
    } catch (e) {
      if (!(e instanceof MongoBulkWriteError) && !(e instanceof MongoServerError && e.code === 11000)) throw e;
      const errors = e instanceof MongoBulkWriteError ? (Array.isArray(e.writeErrors) ? e.writeErrors : [e.writeErrors]) : [];
      if (errors.length === 0) return []; // a single duplicate without details: count the whole batch as lost
      for (const w of errors) {
        if (w.code !== 11000) throw e;
        lost.add(w.index);
      }
    }
    return rows.filter((_, i) => !lost.has(i)).map((r) => ({ id: r.registry_id, ticket: r.ticket }));
  }
}

export class LeaseStore {
  private readonly registries: Collection<StoredRegistry>;
  private readonly leases: Collection<LeaseRow>;

  constructor(db: Db, private readonly owner: string = randomUUID()) {
    this.registries = db.collection<StoredRegistry>(COLLECTION);
    this.leases = db.collection<LeaseRow>(LEASES);
  }

  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.leases, [{ key: { claimed_at: 1 }, name: 'claimed_at' }]);
  }

  sweep(kind: SweepKind, sweepId: string, leaseMs: number): SweepClaimer {
    return new SweepClaimer(this.registries, this.leases, kind, sweepId, this.owner, leaseMs);
  }

  /** Registries not yet swept in `sweepId` (claimed by nobody, or claimed but not written yet). */
  async pending(kind: SweepKind, sweepId: string): Promise<number> {
    const f = leaseFields(kind);
    const now = new Date();
    return this.registries.countDocuments({
      $or: [{ [f.swept]: { $ne: sweepId } }, { [f.leaseUntil]: { $gt: now } }],
    } as Filter<StoredRegistry>);
  }

  /** Claim rows are only needed while their sweep runs; drop those older than `maxAgeMs`. */
  async pruneClaims(maxAgeMs: number): Promise<number> {
    const r = await this.leases.deleteMany({ claimed_at: { $lt: new Date(Date.now() - maxAgeMs) } });
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
