/**
 * The one storage refresh step, shared by the storage sweeps and POST /container_registry/:id/refresh_storage:
 * stored entry → target → storage crawl → `observed` through the result writer, and (SPEC 19) the crawl's
 * findings into the entry's inventory (src/inventory/repository.ts), committed only when the crawl completed
 * (truncated or not) and every row was written; a crawl that failed leaves the previous inventory in place.
 * One refresh at a time per entry across replicas (refresh-turns.ts): a second one answers `busy`.
 *
 * The inventory is committed before `observed` is written, so the entry's change in the feed (a new
 * `refreshed_at`) tells every replica to load it. An entry deleted meanwhile loses the inventory just
 * committed (the delete's own removal may have run before the commit).
 */
import type { ContainerRegistryObserved } from '../generated';
import type { InventoryRepository, InventorySummary, InventoryWrite } from '../inventory/repository';
import type { StorageCrawler } from '../probe/types';
import type { CredentialCipher } from '../registries/credentials';
import type { StoredRegistry } from '../registries/model';
import { clipToSchema, schemas } from '../schemas';
import { message, withDeadline } from './check';
import type { Lease } from './leases';
import type { RefreshTurns } from './refresh-turns';
import { toProbeTarget } from './target';
import type { ResultWriter } from './writer';

/** Ended refresh turns are kept this long (only a live turn matters). */
const TURNS_KEPT_MS = 15 * 60_000;

export type StorageRefresh =
  | { kind: 'done'; observed: ContainerRegistryObserved; written: boolean; inventory: InventorySummary | null }
  /** Another refresh of the entry is running (on this replica or another). */
  | { kind: 'busy' };

export interface RefresherDeps {
  crawler?: StorageCrawler;
  cipher: CredentialCipher;
  writer: ResultWriter;
  inventory: InventoryRepository;
  turns: RefreshTurns;
  /** Hard ceiling on one storage crawl. */
  crawlDeadlineMs: number;
}

export class StorageRefresher {
  constructor(private readonly deps: RefresherDeps) {}

  /** Drops the refresh turns that ended long ago (no TTL indexes on FerretDB v1); after each storage sweep. */
  async pruneTurns(): Promise<number> {
    return this.deps.turns.leases.prune(TURNS_KEPT_MS);
  }

  /** Crawl + inventory + `observed`; `lease` is the sweep's claim (absent when asked through the API). */
  async refresh(doc: StoredRegistry, lease?: Lease): Promise<StorageRefresh> {
    const state = await this.deps.inventory.state(doc._id);
    const turn = await this.deps.turns.take(doc._id, state?.generation ?? 0, state?.turn ?? 1);
    if (turn === 'busy') return { kind: 'busy' };
    try {
      return await this.run(doc, Number(turn.term.split('.')[1]), lease);
    } finally {
      await this.deps.turns.release(turn).catch(() => undefined);
    }
  }

  private async run(doc: StoredRegistry, turn: number, lease: Lease | undefined): Promise<StorageRefresh> {
    const started = Date.now();
    const inventory = await this.deps.inventory.begin(doc._id, turn);
    const observed = clipToSchema(schemas.observed, await this.crawl(doc, inventory, started));
    const summary = await this.finish(inventory, observed);
    const write = await this.deps.writer.writeObserved(doc._id, observed, lease, { doc, readAt: started });
    if (write.reason === 'missing') await this.deps.inventory.remove(doc._id);
    return { kind: 'done', observed, written: write.written, inventory: summary };
  }

  /** The crawl's result; a crawl that throws is recorded as an error. */
  private async crawl(doc: StoredRegistry, sink: InventoryWrite, started: number): Promise<ContainerRegistryObserved> {
    const crawler = this.deps.crawler;
    if (!crawler) return { refreshed_at: new Date(started).toISOString(), duration_ms: 0, error: 'probe_error', detail: 'no storage crawler configured' };
    try {
      const target = toProbeTarget(doc, this.deps.cipher);
      return await withDeadline(this.deps.crawlDeadlineMs, (signal) => crawler(target, signal, sink));
    } catch (e) {
      return { refreshed_at: new Date(started).toISOString(), duration_ms: Date.now() - started, error: 'probe_error', detail: `storage refresh failed: ${message(e)}` };
    }
  }

  /** Commits the generation when the crawl completed and every row was written; otherwise gives it up. */
  private async finish(inventory: InventoryWrite, observed: ContainerRegistryObserved): Promise<InventorySummary | null> {
    const complete = observed.catalog_supported === true && !observed.error && observed.refreshed_at !== undefined && !inventory.failed;
    try {
      if (complete) return await inventory.commit(observed.refreshed_at!, observed.truncated === true);
    } catch {
      // The database refused the commit: the previous inventory stays; this generation goes below.
    }
    await inventory.abort().catch(() => undefined);
    return null;
  }
}
