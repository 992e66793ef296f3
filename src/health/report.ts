/**
 * Health reports, computed from the stored health of every registry and from the probe history:
 * totals per status, and per registry its status, uptime over 24 h and 7 d, p50/p95 latency,
 * consecutive failures, last error and last status change. One report is stored per sweep (the last
 * `keep` are kept) and GET /health_report returns the latest.
 *
 * Definitions (also sent in the report): uptime = share of probes in the window whose status was healthy
 * or degraded (the registry answered); latency percentiles use the probes of the last 24 h that got an HTTP
 * answer, nearest-rank method; null when there is nothing to compute from.
 */
import type { Collection, Db } from 'mongodb';
import { isDuplicateKey } from '../db/atomic';
import { ensureIndexes } from '../db/indexes';
import type { ContainerRegistryHealth } from '../generated';
import { COLLECTION, type StoredRegistry } from '../registries/model';
import type { BadEntries } from '../registries/stored-shape';
import { HISTORY, type HistoryRow } from './writer';

export const REPORTS = 'container_registry_health_reports';

const DAY = 86_400_000;
const STATUSES = ['healthy', 'degraded', 'unhealthy', 'unknown'] as const;

export const REPORT_DEFINITIONS = {
  uptime: 'share of probes in the window with status healthy or degraded',
  latency: 'nearest-rank percentiles over the last 24 h of probes that got an HTTP answer',
} as const;

export interface RegistryReport {
  container_registry_id: string;
  container_registry_name: string;
  status: ContainerRegistryHealth['status'];
  uptime_24h: number | null;
  uptime_7d: number | null;
  probes_24h: number;
  probes_7d: number;
  latency_p50_ms: number | null;
  latency_p95_ms: number | null;
  consecutive_failures: number;
  last_error: { error: string; detail: string | null; at: string } | null;
  last_status_change_at: string | null;
}

export interface SweepSummary {
  kind: 'health' | 'storage';
  sweep_id: string;
  started_at: string;
  finished_at: string;
  duration_ms: number;
  concurrency: number;
  /** Registries this replica claimed and processed in this sweep. */
  claimed: number;
  written: number;
  /** Results dropped because another worker's ticket took over. */
  superseded: number;
  failed: number;
  statuses: Record<string, number>;
  slowest_ms: number;
}

export interface HealthReport {
  report_id: string;
  generated_at: string;
  /** The reporting replica's own share of the sweep (null for a report computed on demand). */
  sweep: SweepSummary | null;
  /** Probes of this sweep recorded in history by all replicas (null without a sweep). */
  sweep_probes: number | null;
  totals: Record<(typeof STATUSES)[number], number> & { total: number };
  definitions: typeof REPORT_DEFINITIONS;
  registries: RegistryReport[];
}

interface StoredReport extends Omit<HealthReport, 'report_id' | 'generated_at'> {
  _id: string;
  generated_at: Date;
}

/** Nearest-rank percentile of ascending `sorted`. */
export function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** What the report needs of one registry's history. */
interface Tally {
  probes7d: number;
  up7d: number;
  probes24h: number;
  up24h: number;
  latencies24h: number[];
  lastError: { error: string; detail: string | null; at: Date } | undefined;
}

const ratio = (up: number, total: number): number | null => (total === 0 ? null : Math.round((up / total) * 10_000) / 10_000);

export class HealthReporter {
  private readonly registries: Collection<StoredRegistry>;
  private readonly history: Collection<HistoryRow>;
  private readonly reports: Collection<StoredReport>;

  /** `bad`: a malformed stored entry (src/registries/stored-shape.ts) is left out of the report (logged once) rather than counted wrong. */
  constructor(db: Db, private readonly opts: { keep: number; queryTimeoutMs: number; bad: BadEntries }) {
    this.registries = db.collection<StoredRegistry>(COLLECTION);
    this.history = db.collection<HistoryRow>(HISTORY);
    this.reports = db.collection<StoredReport>(REPORTS);
  }

  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.reports, [{ key: { generated_at: -1 }, name: 'generated_at' }]);
  }

  /**
   * A report as of `now`: one scan of the registries and one of the last 7 days of history. History rows
   * are folded into small per-registry tallies as the cursor streams them (a week of 5-minute sweeps over
   * 1,000 registries is two million rows; they are never held at once), and only the latencies of the
   * last 24 h are kept, as numbers, for the percentiles.
   */
  async compute(now: Date = new Date(), sweep: SweepSummary | null = null): Promise<HealthReport> {
    const day = new Date(now.getTime() - DAY);
    const week = new Date(now.getTime() - 7 * DAY);
    const tallies = new Map<string, Tally>();
    let sweepProbes = 0;
    const rows = this.history.find(
      { checked_at: { $gte: week, $lte: now } },
      { projection: { _id: 0, registry_id: 1, sweep_id: 1, checked_at: 1, status: 1, latency_ms: 1, http_status: 1, error: 1, detail: 1 }, batchSize: 5000 },
    );
    const folding = (async () => {
      for await (const row of rows) {
        if (sweep && row.sweep_id === sweep.sweep_id) sweepProbes++;
        let t = tallies.get(row.registry_id);
        if (!t) tallies.set(row.registry_id, (t = { probes7d: 0, up7d: 0, probes24h: 0, up24h: 0, latencies24h: [], lastError: undefined }));
        const up = row.status !== 'unhealthy';
        t.probes7d++;
        if (up) t.up7d++;
        if (row.checked_at >= day) {
          t.probes24h++;
          if (up) t.up24h++;
          if (row.http_status !== null) t.latencies24h.push(row.latency_ms);
        }
        if (row.error !== null && (!t.lastError || row.checked_at > t.lastError.at)) t.lastError = { error: row.error, detail: row.detail, at: row.checked_at };
      }
    })();
    const [docs] = await Promise.all([
      this.registries
        .find({}, { projection: { container_registry_name: 1, container_registry_health: 1, revision: 1 }, sort: { _id: 1 }, maxTimeMS: this.opts.queryTimeoutMs })
        .toArray(),
      folding,
    ]);
    const totals = { healthy: 0, degraded: 0, unhealthy: 0, unknown: 0, total: 0 };
    const registries = docs.filter((doc) => this.opts.bad.ok(doc, 'health report')).map((doc): RegistryReport => {
      const health = doc.container_registry_health ?? { status: 'unknown' };
      totals[health.status] += 1;
      totals.total += 1;
      const t = tallies.get(doc._id);
      const latencies = t ? t.latencies24h.sort((a, b) => a - b) : [];
      return {
        container_registry_id: doc._id,
        container_registry_name: doc.container_registry_name,
        status: health.status,
        uptime_24h: ratio(t?.up24h ?? 0, t?.probes24h ?? 0),
        uptime_7d: ratio(t?.up7d ?? 0, t?.probes7d ?? 0),
        probes_24h: t?.probes24h ?? 0,
        probes_7d: t?.probes7d ?? 0,
        latency_p50_ms: percentile(latencies, 50),
        latency_p95_ms: percentile(latencies, 95),
        consecutive_failures: health.consecutive_failures ?? 0,
        last_error: t?.lastError ? { error: t.lastError.error, detail: t.lastError.detail, at: t.lastError.at.toISOString() } : null,
        last_status_change_at: health.last_status_change_at ?? null,
      };
    });
    return {
      report_id: sweep?.sweep_id ?? `on-demand@${now.toISOString()}`,
      generated_at: now.toISOString(),
      sweep,
      sweep_probes: sweep ? sweepProbes : null,
      totals,
      definitions: REPORT_DEFINITIONS,
      registries,
    };
  }

  /** Stores `report` (one per sweep id: the replica that finishes last has the fullest view) and trims old ones. */
  async store(report: HealthReport): Promise<void> {
    const { report_id, generated_at, ...rest } = report;
    const doc = { ...rest, generated_at: new Date(generated_at) };
    // A report computed earlier never replaces one computed later: a replica that took the sweep for finished
    // too early (the others had not claimed yet) and stalled before storing must not overwrite the full one.
    const newer = { _id: report_id, generated_at: { $lte: doc.generated_at } };
    if ((await this.reports.replaceOne(newer, doc)).matchedCount === 0) {
      try {
        await this.reports.insertOne({ _id: report_id, ...doc } as never);
      } catch (e) {
        // Another replica stored this sweep's report meanwhile (or a later one is there): the later one stays.
        if (!isDuplicateKey(e)) throw e;
        await this.reports.replaceOne(newer, doc);
      }
    }
    const old = await this.reports.find({}, { projection: { _id: 1 }, sort: { generated_at: -1 }, skip: this.opts.keep }).toArray();
    if (old.length > 0) await this.reports.deleteMany({ _id: { $in: old.map((o) => o._id) } });
  }

  /** The latest stored report, or one computed now when none is stored yet. */
  async latest(): Promise<HealthReport> {
    const stored = await this.reports.findOne({}, { sort: { generated_at: -1 }, maxTimeMS: this.opts.queryTimeoutMs });
    if (!stored) return this.compute();
    const { _id, generated_at, ...rest } = stored;
    return { report_id: _id, generated_at: generated_at.toISOString(), ...rest };
  }
}
