/**
 * The one result writer: the on-demand check and the sweeps both store probe results here.
 *
 * The stored `container_registry_health` is the probe result plus bookkeeping derived from the previous
 * value (consecutive_failures, last_healthy_at, last_status_change_at). It is written with one updateOne
 * that is a compare-and-set on `_health_seq` (so two writers never build on the same previous value) and,
 * for sweeps, on the lease ticket (so a worker whose lease was taken over cannot overwrite newer results).
 * Health writes never bump `version`: that tracks client-owned fields, so sweeps do not invalidate ETags.
 * Every accepted probe is appended to `container_registry_health_history`, pruned by age explicitly
 * (FerretDB v1 has no TTL indexes).
 */
import type { Collection, Db, Filter, ObjectId, UpdateFilter } from 'mongodb';
import type { ContainerRegistryHealth, ContainerRegistryObserved } from '../generated';
import type { ProbeResult } from '../probe/types';
import { COLLECTION, type StoredRegistry } from '../registries/model';
import { leaseFields, type SweepKind } from './leases';
import { ensureIndexes } from '../db/indexes';

export const HISTORY = 'container_registry_health_history';

export interface HistoryRow {
  _id?: ObjectId;
  registry_id: string;
  checked_at: Date;
  status: ProbeResult['status'];
  latency_ms: number;
  http_status: number | null;
  error: string | null;
  detail: string | null;
}

export interface HealthWrite {
  /** True when this result became the stored health. */
  written: boolean;
  /** missing: the entry is gone; superseded: the lease ticket moved on; older: a newer result is stored. */
  reason?: 'missing' | 'superseded' | 'older';
  /** The stored health after the write (null when the entry is gone). */
  health: ContainerRegistryHealth | null;
}

const MAX_DETAIL = 2048;
const SEQ = '_health_seq';
/** A released lease: its deadline is in the past. */
const RELEASED = new Date(0);

/** The stored health that follows `prev` after probe result `r`. */
export function nextHealth(prev: ContainerRegistryHealth | undefined, r: ProbeResult): ContainerRegistryHealth {
  const before = prev ?? { status: 'unknown' };
  return {
    status: r.status,
    checked_at: r.checked_at,
    latency_ms: r.latency_ms,
    http_status: r.http_status,
    api_version: r.api_version,
    auth_required: r.auth_required,
    auth: r.auth,
    tls: r.tls,
    error: r.error as ContainerRegistryHealth['error'],
    detail: r.detail === null ? null : r.detail.slice(0, MAX_DETAIL),
    consecutive_failures: r.status === 'healthy' ? 0 : (before.consecutive_failures ?? 0) + 1,
    last_healthy_at: r.status === 'healthy' ? r.checked_at : (before.last_healthy_at ?? null),
    last_status_change_at: before.status !== r.status ? r.checked_at : (before.last_status_change_at ?? r.checked_at),
  };
}

type Tracked = Pick<StoredRegistry, '_id' | 'container_registry_health'> & Record<string, unknown>;

export class ResultWriter {
  private readonly registries: Collection<StoredRegistry>;
  readonly history: Collection<HistoryRow>;

  constructor(
    db: Db,
    private readonly opts: { historyDays: number; queryTimeoutMs: number },
  ) {
    this.registries = db.collection<StoredRegistry>(COLLECTION);
    this.history = db.collection<HistoryRow>(HISTORY);
  }

  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.history, [
      { key: { registry_id: 1, checked_at: 1 }, name: 'registry_checked_at' },
      { key: { checked_at: 1 }, name: 'checked_at' },
    ]);
  }

  /**
   * Stores probe result `r` of registry `id`. `ticket` (sweeps) makes the write conditional on the lease
   * still being this worker's, and releases the lease.
   */
  async writeHealth(id: string, r: ProbeResult, ticket?: string): Promise<HealthWrite> {
    const f = leaseFields('health');
    for (let attempt = 0; ; attempt++) {
      const current = (await this.registries.findOne({ _id: id } as Filter<StoredRegistry>, {
        projection: { container_registry_health: 1, [SEQ]: 1, [f.ticket]: 1 },
        maxTimeMS: this.opts.queryTimeoutMs,
      })) as Tracked | null;
      if (!current) return { written: false, reason: 'missing', health: null };
      if (ticket !== undefined && current[f.ticket] !== ticket) return { written: false, reason: 'superseded', health: current.container_registry_health };
      const prev = current.container_registry_health;
      if (prev?.checked_at && Date.parse(prev.checked_at) > Date.parse(r.checked_at)) {
        // A newer result (an on-demand check that finished first) stays; this probe still happened.
        if (ticket !== undefined) await this.release('health', id, ticket);
        await this.appendHistory(id, r);
        return { written: false, reason: 'older', health: prev };
      }
      const health = nextHealth(prev, r);
      const seq = current[SEQ];
      const filter: Record<string, unknown> = { _id: id, [SEQ]: typeof seq === 'number' ? seq : { $exists: false } };
      const $set: Record<string, unknown> = { container_registry_health: health };
      if (ticket !== undefined) {
        filter[f.ticket] = ticket;
        $set[f.leaseUntil] = RELEASED;
      }
      const res = await this.registries.updateOne(filter as Filter<StoredRegistry>, { $set, $inc: { [SEQ]: 1 } } as unknown as UpdateFilter<StoredRegistry>);
      if (res.matchedCount === 1) {
        await this.appendHistory(id, r);
        return { written: true, health };
      }
      // Someone wrote in between: rebuild on their result (bounded; a hot entry cannot starve us forever).
      if (attempt >= 20) return { written: false, reason: 'superseded', health: prev };
    }
  }

  /**
   * Stores what a storage refresh observed, key by key under `container_registry_storage_info.observed`
   * (operator-set storage fields are never touched; keys the crawler did not report keep their value).
   */
  async writeObserved(id: string, observed: ContainerRegistryObserved, ticket?: string): Promise<boolean> {
    const f = leaseFields('storage');
    const $set: Record<string, unknown> = {};
    const full: Record<string, unknown> = { error: null, detail: null, ...observed };
    for (const [k, v] of Object.entries(full)) if (v !== undefined) $set[`container_registry_storage_info.observed.${k}`] = v;
    const filter: Record<string, unknown> = { _id: id };
    if (ticket !== undefined) {
      filter[f.ticket] = ticket;
      $set[f.leaseUntil] = RELEASED;
    }
    const res = await this.registries.updateOne(filter as Filter<StoredRegistry>, { $set } as UpdateFilter<StoredRegistry>);
    return res.matchedCount === 1;
  }

  /** Gives a lease back without writing a result. */
  async release(kind: SweepKind, id: string, ticket: string): Promise<void> {
    const f = leaseFields(kind);
    await this.registries.updateOne({ _id: id, [f.ticket]: ticket } as Filter<StoredRegistry>, { $set: { [f.leaseUntil]: RELEASED } } as UpdateFilter<StoredRegistry>);
  }

  private async appendHistory(id: string, r: ProbeResult): Promise<void> {
    await this.history.insertOne({
      registry_id: id,
      checked_at: new Date(r.checked_at),
      status: r.status,
      latency_ms: r.latency_ms,
      http_status: r.http_status,
      error: r.error,
      detail: r.detail === null ? null : r.detail.slice(0, MAX_DETAIL),
    });
  }

  /** Deletes history older than HEALTH_HISTORY_DAYS; returns how many rows went. */
  async pruneHistory(now: Date = new Date()): Promise<number> {
    const cutoff = new Date(now.getTime() - this.opts.historyDays * 86_400_000);
    const res = await this.history.deleteMany({ checked_at: { $lt: cutoff } });
    return res.deletedCount;
  }
}
