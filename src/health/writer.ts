/**
 * The one result writer: the on-demand check and the sweeps both store probe results here.
 *
 * The stored `container_registry_health` is the probe result plus bookkeeping derived from the previous
 * value (consecutive_failures, last_healthy_at, last_status_change_at). It is written through the one
 * door of every entry write (src/registries/writes.ts: the change log's compare-and-set, so no two
 * writers build on the same previous value and each probe result gets its catalog revision) and, for
 * sweeps, only while no newer claim exists (so a worker whose lease was taken over cannot overwrite newer
 * results).
 * Health writes never bump `version`: that tracks client-owned fields, so sweeps do not invalidate ETags.
 * Every accepted probe is appended to `container_registry_health_history`, pruned by age explicitly
 * (FerretDB v1 has no TTL indexes).
 */
import type { Collection, Db, ObjectId } from 'mongodb';
import { ensureIndexes } from '../db/indexes';
import type { ContainerRegistryHealth, ContainerRegistryObserved } from '../generated';
import type { ProbeResult } from '../probe/types';
import type { StoredRegistry } from '../registries/model';
import type { EntryPlan, EntryWriter } from '../registries/writes';
import { leaseFields, type Lease, type LeaseStore } from './leases';

export const HISTORY = 'container_registry_health_history';

export interface HistoryRow {
  _id?: ObjectId;
  registry_id: string;
  /** The sweep that made this probe; null for on-demand checks. */
  sweep_id: string | null;
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

export interface ObservedWrite {
  written: boolean;
  /** missing: the entry is gone; superseded: a newer sweep claim of the registry exists. */
  reason?: 'missing' | 'superseded';
}

/** The entry as the caller read it, and when: the write's first attempt starts from it instead of a read. */
export interface KnownDoc {
  doc: StoredRegistry;
  readAt: number;
}

const MAX_DETAIL = 2048;
const HISTORY_BATCH = 64;

function isAfter(stored: unknown, claimedAt: Date): boolean {
  return stored instanceof Date && stored.getTime() > claimedAt.getTime();
}

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
    ...(r.retry_after ? { retry_after: r.retry_after } : {}),
    consecutive_failures: r.status === 'healthy' ? 0 : (before.consecutive_failures ?? 0) + 1,
    last_healthy_at: r.status === 'healthy' ? r.checked_at : (before.last_healthy_at ?? null),
    last_status_change_at: before.status !== r.status ? r.checked_at : (before.last_status_change_at ?? r.checked_at),
  };
}

export class ResultWriter {
  readonly history: Collection<HistoryRow>;
  private readonly pendingHistory: HistoryRow[] = [];

  constructor(
    db: Db,
    private readonly entries: EntryWriter,
    private readonly leases: LeaseStore,
    private readonly opts: { historyDays: number },
  ) {
    this.history = db.collection<HistoryRow>(HISTORY);
  }

  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.history, [
      { key: { registry_id: 1, checked_at: 1 }, name: 'registry_checked_at' },
      { key: { checked_at: 1 }, name: 'checked_at' },
    ]);
  }

  /**
   * Stores probe result `r` of registry `id`. With `lease` (sweeps) the write only happens while no newer
   * claim exists for the registry, and marks the registry as done for the lease's sweep.
   */
  async writeHealth(id: string, r: ProbeResult, lease?: Lease, known?: KnownDoc): Promise<HealthWrite> {
    if (lease && (await this.leases.supersededBy('health', lease))) return { written: false, reason: 'superseded', health: null };
    const f = leaseFields('health');
    const outcome = await this.modify<HealthWrite>(id, (doc) => {
      if (!doc) return { kind: 'none', result: { written: false, reason: 'missing', health: null } };
      const prev = doc.container_registry_health;
      if (lease && isAfter(doc[f.claimedAt], lease.claimedAt)) return { kind: 'none', result: { written: false, reason: 'superseded', health: prev } };
      // A newer result (an on-demand check that finished first) stays.
      if (prev?.checked_at && Date.parse(prev.checked_at) > Date.parse(r.checked_at)) return { kind: 'none', result: { written: false, reason: 'older', health: prev } };
      const health = nextHealth(prev, r);
      const next = { ...doc, container_registry_health: health } as StoredRegistry;
      if (lease) Object.assign(next, { [f.swept]: lease.sweepId, [f.claimedAt]: lease.claimedAt });
      return { kind: 'replace', next, result: { written: true, health } };
    }, known);
    if (outcome.written || outcome.reason === 'older') await this.appendHistory(id, r, lease?.sweepId ?? null);
    return outcome;
  }

  /**
   * Stores what a storage refresh observed, key by key under `container_registry_storage_info.observed`
   * (operator-set storage fields are never touched; keys the crawler did not report keep their value).
   */
  async writeObserved(id: string, observed: ContainerRegistryObserved, lease?: Lease, known?: KnownDoc): Promise<ObservedWrite> {
    if (lease && (await this.leases.supersededBy('storage', lease))) return { written: false, reason: 'superseded' };
    const f = leaseFields('storage');
    return this.modify<ObservedWrite>(id, (doc) => {
      if (!doc) return { kind: 'none', result: { written: false, reason: 'missing' } };
      if (lease && isAfter(doc[f.claimedAt], lease.claimedAt)) return { kind: 'none', result: { written: false, reason: 'superseded' } };
      const before = (doc.container_registry_storage_info?.observed ?? {}) as Record<string, unknown>;
      const merged: Record<string, unknown> = { ...before };
      for (const [k, v] of Object.entries({ error: null, detail: null, ...observed })) if (v !== undefined) merged[k] = v;
      const next = { ...doc, container_registry_storage_info: { ...(doc.container_registry_storage_info ?? {}), observed: merged } } as StoredRegistry;
      if (lease) Object.assign(next, { [f.swept]: lease.sweepId, [f.claimedAt]: lease.claimedAt });
      return { kind: 'replace', next, result: { written: true } };
    }, known);
  }

  /** The write of entry `id` through the one door (an entry written too often to get a turn is a 503). */
  private modify<R>(id: string, plan: (doc: StoredRegistry | null) => EntryPlan<R>, known?: KnownDoc): Promise<R> {
    return this.entries.modify<R>(id, plan, known);
  }

  /**
   * On-demand checks append their history row at once; sweeps buffer theirs and insert them in batches
   * (flushHistory), one insert fewer per registry on a database where every operation queues.
   */
  private async appendHistory(id: string, r: ProbeResult, sweepId: string | null): Promise<void> {
    const row: HistoryRow = {
      registry_id: id,
      sweep_id: sweepId,
      checked_at: new Date(r.checked_at),
      status: r.status,
      latency_ms: r.latency_ms,
      http_status: r.http_status,
      error: r.error,
      detail: r.detail === null ? null : r.detail.slice(0, MAX_DETAIL),
    };
    if (sweepId === null) {
      await this.history.insertOne(row);
      return;
    }
    this.pendingHistory.push(row);
    if (this.pendingHistory.length >= HISTORY_BATCH) await this.flushHistory();
  }

  /** Inserts the buffered history rows of sweeps (the scheduler calls it when a sweep's work is done). */
  async flushHistory(): Promise<void> {
    while (this.pendingHistory.length > 0) {
      const rows = this.pendingHistory.splice(0, HISTORY_BATCH);
      await this.history.insertMany(rows, { ordered: false });
    }
  }

  /** Deletes history older than HEALTH_HISTORY_DAYS; returns how many rows went. */
  async pruneHistory(now: Date = new Date()): Promise<number> {
    const cutoff = new Date(now.getTime() - this.opts.historyDays * 86_400_000);
    const res = await this.history.deleteMany({ checked_at: { $lt: cutoff } });
    return res.deletedCount;
  }
}
