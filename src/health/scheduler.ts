/**
 * Scheduled sweeps (node-cron): health probes on HEALTH_CRON, storage refreshes on STORAGE_CRON (`off`
 * disables one). A sweep is identified by its cron tick (`health@<tick time>`), so every replica firing the
 * same tick works on the same sweep; registries are claimed through leases.ts, so each is processed once per
 * sweep across all replicas. Per replica: a sweep never overlaps itself, at most PROBE_CONCURRENCY probes run
 * at once, and a hanging registry holds only its own slot for at most its own deadline.
 */
import { schedule, type ScheduledTask } from 'node-cron';
import type { Config } from '../config';
import { ServiceUnavailableError } from '../errors';
import type { Logger } from '../logger';
import type { StoredRegistry } from '../registries/model';
import { recordSweep } from '../observability/metrics';
import type { HealthChecker } from './check';
import type { StorageRefresher } from './refresh';
import type { Claim, LeaseStore, SweepKind } from './leases';
import type { HealthReport, HealthReporter, SweepSummary } from './report';
import type { ResultWriter } from './writer';
import { unacknowledgedWrites } from '../registries/writes';

/**
 * Per-registry cadence (SPEC 16): false when a sweep should leave the registry alone now, because it was
 * probed more recently than its `container_registry_config.health_check_interval_s`, or it is rate limited
 * and its Retry-After has not passed. On-demand checks ignore both (someone asked).
 */
export function dueForProbe(doc: Pick<StoredRegistry, 'container_registry_config' | 'container_registry_health'>, now = Date.now()): boolean {
  const health = doc.container_registry_health;
  const interval = (doc.container_registry_config as { health_check_interval_s?: unknown } | undefined)?.health_check_interval_s;
  const checked = health?.checked_at ? Date.parse(health.checked_at) : NaN;
  // A little slack: a sweep every 5 minutes with an interval of 300 s probes every sweep, not every other one.
  if (typeof interval === 'number' && !Number.isNaN(checked) && now - checked < interval * 1000 - 5000) return false;
  const until = health?.error === 'rate_limited' && health.retry_after ? Date.parse(health.retry_after) : NaN;
  return Number.isNaN(until) || now >= until;
}

/** The sweep id every replica derives from the same cron tick. */
export function sweepIdFor(kind: SweepKind, tick: Date): string {
  return `${kind}@${new Date(Math.floor(tick.getTime() / 1000) * 1000).toISOString()}`;
}

export interface SchedulerDeps {
  config: Pick<Config, 'HEALTH_CRON' | 'STORAGE_CRON' | 'PROBE_CONCURRENCY' | 'PROBE_TIMEOUT_MS'>;
  leases: LeaseStore;
  checker: HealthChecker;
  refresher: StorageRefresher;
  writer: ResultWriter;
  reporter: HealthReporter;
  logger: Logger;
  /** Hard ceilings used for lease lengths (a lease outlives the work it covers). */
  probeDeadlineMs: number;
  crawlDeadlineMs: number;
}

export interface SweepOptions {
  /** Shared by all replicas working on the same sweep; defaults to the current second. */
  sweepId?: string;
}

export interface HealthSweepOutcome {
  summary: SweepSummary;
  /** Stored by the replica that finished the sweep last; null on the others. */
  report: HealthReport | null;
}

/**
 * Lease rows only matter while their sweep runs (the written result marks the registry as done for the
 * sweep); they are dropped after this long so the lease scans stay small.
 */
const LEASE_ROWS_KEPT_MS = 15 * 60_000;

export class Scheduler {
  private readonly tasks: ScheduledTask[] = [];
  private readonly running = new Map<SweepKind, Promise<unknown>>();
  private stopping = false;
  private readonly healthCron: string | null;
  private readonly storageCron: string | null;

  constructor(private readonly deps: SchedulerDeps) {
    // Validated, `off` already null: src/config.ts.
    this.healthCron = deps.config.HEALTH_CRON;
    this.storageCron = deps.config.STORAGE_CRON;
  }

  start(): void {
    if (this.tasks.length > 0) return;
    this.stopping = false;
    const plan: Array<[SweepKind, string | null, (o: SweepOptions) => Promise<unknown>]> = [
      ['health', this.healthCron, (o) => this.sweepHealth(o)],
      ['storage', this.storageCron, (o) => this.sweepStorage(o)],
    ];
    for (const [kind, expression, run] of plan) {
      if (!expression) continue;
      const task = schedule(
        expression,
        async (ctx) => {
          try {
            await run({ sweepId: sweepIdFor(kind, ctx.date) });
          } catch (e) {
            this.deps.logger.error('sweep failed', { kind, err: e });
          }
        },
        { name: `${kind}-sweep`, noOverlap: true },
      );
      this.tasks.push(task);
    }
    this.deps.logger.info('scheduler started', { health_cron: this.healthCron ?? 'off', storage_cron: this.storageCron ?? 'off' });
  }

  /** Stops the cron tasks and waits for sweeps in flight (they claim nothing more once stopping). */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const task of this.tasks.splice(0)) await task.destroy();
    await Promise.allSettled([...this.running.values()]);
  }

  /** One health sweep; null when this replica is already running one. */
  async sweepHealth(opts: SweepOptions = {}): Promise<HealthSweepOutcome | null> {
    return this.exclusive('health', async () => {
      const summary = await this.runSweep('health', opts.sweepId ?? sweepIdFor('health', new Date()), this.deps.probeDeadlineMs, async (claim) => {
        if (!dueForProbe(claim.doc)) return { status: 'not_due', latency: 0, written: false, superseded: false };
        const { result, write } = await this.deps.checker.check(claim.doc, claim.lease);
        return { status: result.status, latency: result.latency_ms, written: write.written, superseded: write.reason === 'superseded' };
      });
      // The replica that finishes last (no live lease of this sweep left) prunes and stores the report, so
      // the report sees every result and the scans of history run once per sweep, not once per replica.
      const last = (await this.deps.leases.live('health', summary.sweep_id)) === 0;
      let report: HealthReport | null = null;
      let pruned = 0;
      if (last) {
        pruned = await this.deps.writer.pruneHistory();
        await this.deps.leases.prune(LEASE_ROWS_KEPT_MS);
        report = await this.deps.reporter.compute(new Date(), summary);
        await this.deps.reporter.store(report);
      }
      this.deps.logger.info('health sweep finished', {
        sweep_id: summary.sweep_id,
        duration_ms: summary.duration_ms,
        claimed: summary.claimed,
        written: summary.written,
        superseded: summary.superseded,
        failed: summary.failed,
        slowest_ms: summary.slowest_ms,
        statuses: summary.statuses,
        report: report ? 'stored' : 'left to the replica finishing last',
        totals: report?.totals ?? null,
        history_pruned: pruned,
      });
      return { summary, report };
    });
  }

  /** One storage refresh sweep; null when this replica is already running one. */
  async sweepStorage(opts: SweepOptions = {}): Promise<SweepSummary | null> {
    return this.exclusive('storage', async () => {
      const summary = await this.runSweep('storage', opts.sweepId ?? sweepIdFor('storage', new Date()), this.deps.crawlDeadlineMs, async (claim) => {
        const r = await this.deps.refresher.refresh(claim.doc, claim.lease);
        // A refresh asked through the API is running now: its result is this sweep's too.
        if (r.kind === 'busy') return { status: 'running', latency: 0, written: false, superseded: false };
        const { observed, written } = r;
        return { status: observed.error ? 'error' : observed.catalog_supported === false ? 'catalog_unsupported' : 'refreshed', latency: observed.duration_ms ?? 0, written, superseded: !written };
      });
      await this.deps.refresher.pruneTurns().catch((e: unknown) => this.deps.logger.warn('storage sweep: pruning refresh turns failed', { error: String(e) }));
      this.deps.logger.info('storage sweep finished', {
        sweep_id: summary.sweep_id,
        duration_ms: summary.duration_ms,
        claimed: summary.claimed,
        written: summary.written,
        failed: summary.failed,
        statuses: summary.statuses,
      });
      return summary;
    });
  }

  private async exclusive<T>(kind: SweepKind, run: () => Promise<T>): Promise<T | null> {
    if (this.running.has(kind)) {
      this.deps.logger.warn('sweep skipped: the previous one is still running', { kind });
      return null;
    }
    const p = run();
    this.running.set(kind, p);
    try {
      return await p;
    } finally {
      this.running.delete(kind);
    }
  }

  /** Claims and processes registries of one sweep with bounded concurrency until none is left. */
  private async runSweep(
    kind: SweepKind,
    sweepId: string,
    deadlineMs: number,
    work: (claim: Claim) => Promise<{ status: string; latency: number; written: boolean; superseded: boolean }>,
  ): Promise<SweepSummary> {
    const concurrency = this.deps.config.PROBE_CONCURRENCY;
    const started = Date.now();
    const claimer = this.deps.leases.sweep(kind, sweepId, 2 * deadlineMs + 60_000);
    const summary: SweepSummary = {
      kind,
      sweep_id: sweepId,
      started_at: new Date(started).toISOString(),
      finished_at: '',
      duration_ms: 0,
      concurrency,
      claimed: 0,
      written: 0,
      superseded: 0,
      failed: 0,
      statuses: {},
      slowest_ms: 0,
    };
    const inFlight = new Set<Promise<void>>();
    const runOne = async (claim: Claim): Promise<void> => {
      const t0 = Date.now();
      try {
        const r = await work(claim);
        summary.statuses[r.status] = (summary.statuses[r.status] ?? 0) + 1;
        if (r.written) summary.written += 1;
        if (r.superseded) summary.superseded += 1;
      } catch (e) {
        summary.failed += 1;
        // The entry was written by others (clients, other replicas) again and again until the write's deadline:
        // expected under contention, not a fault; the next sweep probes it again.
        if (e instanceof ServiceUnavailableError) this.deps.logger.warn('sweep item not written: the entry is being written too often', { kind, sweep_id: sweepId, registry_id: claim.doc._id, detail: e.message });
        else this.deps.logger.error('sweep item failed', { kind, sweep_id: sweepId, registry_id: claim.doc._id, err: e });
      } finally {
        summary.slowest_ms = Math.max(summary.slowest_ms, Date.now() - t0);
      }
    };
    // Claims come in batches of `concurrency` (few claim rounds: each is a collection scan on FerretDB v1)
    // and wait in `queue` for a free slot; the lease covers that wait (at most one deadline) plus the work.
    const queue: Claim[] = [];
    // The results are told to nobody one by one: reads need not wait for each (they count once the sweep ends).
    await unacknowledgedWrites(async () => {
      while (!this.stopping) {
        if (queue.length === 0 && !claimer.done) queue.push(...(await claimer.claim(concurrency)));
        const next = queue.shift();
        if (!next) break;
        while (inFlight.size >= concurrency) await Promise.race(inFlight);
        summary.claimed += 1;
        const p: Promise<void> = runOne(next).finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      await Promise.all(inFlight);
    });
    await this.deps.writer.flushHistory();
    await claimer.release();
    const finished = Date.now();
    summary.finished_at = new Date(finished).toISOString();
    summary.duration_ms = finished - started;
    recordSweep(kind, summary.duration_ms / 1000);
    return summary;
  }
}
