/**
 * The inventory (SPEC 19): what each storage refresh saw of a registry (repositories; per tag the manifest
 * digest, media type and an index's platforms), and what is derived from it.
 *
 *   repository.ts    the one repository over the inventory's own collections (states and chunks, by `_id`)
 *   pages.ts         GET /container_registry/:id/inventory: key-set pages read from the repository
 *   snapshot.ts      one registry's inventory packed in memory
 *   memory-index.ts  every registry's snapshot within INVENTORY_MEMORY_MB: what /resolve and /images read
 *   loader.ts        keeps the memory index current from the change feed (a new `refreshed_at` → reload)
 *   images.ts        GET /images: where an image is, from memory
 *   drift-keeper.ts  each mirror's `observed.mirror_drift` summary, written by one replica (lease)
 *
 * Storage refreshes (src/health/refresh.ts) write through the repository; resolution (src/resolve/) reads the
 * memory index through its own small interface; the inventory never enters the change feed.
 */
import type { Db } from 'mongodb';
import type { Config } from '../config';
import { Leases } from '../db/lease';
import type { CatalogFeed } from '../feed/reader';
import { MemoryBudget } from '../lib/memory-budget';
import type { Logger } from '../logger';
import type { EntryWriter } from '../registries/writes';
import type { PrefixIndex } from '../resolve';
import { DriftKeeper } from './drift-keeper';
import { InventoryLoader } from './loader';
import { InventoryIndex } from './memory-index';
import { InventoryRepository } from './repository';

export { findImage } from './images';
export { parseInventoryQuery, readPage, encodeInventoryCursor, type InventoryPage } from './pages';
export { InventoryRepository, type InventorySummary } from './repository';
export { InventoryIndex } from './memory-index';

/** The drift writer's lease: a replica that dies hands it over within this long. */
const DRIFT_LEASE_MS = 15_000;
/** Inventory loads gathered before the affected mirrors' drift is recomputed. */
const DRIFT_DEBOUNCE_MS = 500;

export type Inventory = Awaited<ReturnType<typeof createInventory>>;

export async function createInventory(deps: { config: Config; db: Db; feed: CatalogFeed; resolver: PrefixIndex; entries: EntryWriter; logger: Logger }) {
  const repository = new InventoryRepository(deps.db);
  const index = new InventoryIndex(new MemoryBudget(deps.config.INVENTORY_MEMORY_MB * 1024 * 1024));
  const loader = new InventoryLoader(repository, index, deps.feed, deps.logger);
  const leases = new Leases(deps.db, 'inventory-drift', DRIFT_LEASE_MS);
  await leases.ensureIndexes();
  const drift = new DriftKeeper(deps.feed, deps.resolver, index, loader, deps.entries, leases, deps.logger, { debounceMs: DRIFT_DEBOUNCE_MS, leaseMs: DRIFT_LEASE_MS });
  loader.start();
  drift.start();
  return {
    repository,
    index,
    loader,
    drift,
    async stop(): Promise<void> {
      loader.stop();
      await drift.stop();
    },
  };
}
