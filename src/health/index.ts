/**
 * The health service assembled from its parts: one checker (probe + writer) and one storage refresher
 * (crawl + inventory + writer), each shared by the routes and the sweeps, the lease store, the reporter and
 * the scheduler.
 */
import type { Db } from 'mongodb';
import type { Config } from '../config';
import type { Logger } from '../logger';
import type { Prober, StorageCrawler } from '../probe/types';
import type { CredentialCipher } from '../registries/credentials';
import { BadEntries } from '../registries/stored-shape';
import type { EntryWriter } from '../registries/writes';
import { Leases } from '../db/lease';
import type { InventoryRepository } from '../inventory/repository';
import { HealthChecker } from './check';
import { HealthHistoryReader } from './history';
import { LeaseStore } from './leases';
import { StorageRefresher } from './refresh';
import { RefreshTurns } from './refresh-turns';
import { HealthReporter } from './report';
import { Scheduler } from './scheduler';
import { ResultWriter } from './writer';

export interface HealthServiceDeps {
  config: Config;
  db: Db;
  logger: Logger;
  cipher: CredentialCipher;
  prober: Prober;
  crawler?: StorageCrawler;
  /** The one door of every entry write (src/registries/writes.ts), shared with the catalog. */
  entries: EntryWriter;
  /** Where storage refreshes record what they saw (SPEC 19). */
  inventory: InventoryRepository;
  /** Reports kept in container_registry_health_reports. */
  reportsKept?: number;
}

export type HealthService = Awaited<ReturnType<typeof createHealthService>>;

/** Builds the health service and its indexes. */
export async function createHealthService(deps: HealthServiceDeps) {
  const { config, db } = deps;
  // Safety nets one step above the probe client's own time limits (check.ts).
  const probeDeadlineMs = config.PROBE_TIMEOUT_MS + 1000;
  const crawlDeadlineMs = config.STORAGE_TIMEOUT_MS + 5000;
  const leases = new LeaseStore(db, (id) => deps.entries.latestKnown?.(id));
  const writer = new ResultWriter(db, deps.entries, leases, { historyDays: config.HEALTH_HISTORY_DAYS });
  const reporter = new HealthReporter(db, { keep: deps.reportsKept ?? 100, queryTimeoutMs: config.QUERY_TIMEOUT_MS, bad: new BadEntries(deps.logger) });
  const history = new HealthHistoryReader(db, { queryTimeoutMs: config.QUERY_TIMEOUT_MS, historyDays: config.HEALTH_HISTORY_DAYS });
  const checker = new HealthChecker({ prober: deps.prober, cipher: deps.cipher, writer, probeDeadlineMs });
  // One storage refresh per entry at a time, across replicas: a turn lasts the crawl's hard deadline and a minute.
  const turns = new RefreshTurns(new Leases(db, 'storage-refresh', crawlDeadlineMs + 60_000));
  const refresher = new StorageRefresher({ crawler: deps.crawler, cipher: deps.cipher, writer, inventory: deps.inventory, turns, crawlDeadlineMs });
  const scheduler = new Scheduler({ config, leases, checker, refresher, writer, reporter, logger: deps.logger, probeDeadlineMs, crawlDeadlineMs });
  await Promise.all([writer.ensureIndexes(), leases.ensureIndexes(), reporter.ensureIndexes()]);
  return { checker, refresher, writer, leases, reporter, scheduler, history };
}
