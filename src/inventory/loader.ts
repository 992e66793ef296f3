/**
 * Keeps a replica's in-memory inventories (memory-index.ts) current, fed like the view: by the change feed,
 * never by a poll of its own. The inventory is not in the feed, but every storage refresh that commits one
 * then writes the entry's `observed` (a new `refreshed_at`), and that change is in the feed: a local entry
 * whose `refreshed_at` changed has its state read again (one read by `_id`), and when the state names
 * another generation, its chunks (by `_id` too) are packed into a new snapshot. So the feed's guarantees
 * (SPEC 12) carry over, and no document of the feed grows with the inventory.
 *
 * Deletes: every replica's loader, on a delete in the feed, removes the entry's inventory from the database
 * (idempotent; any replica may have died mid-way) and from memory. At start, it reads every state once (one
 * scan of a collection of one document per registry): those of live local entries are loaded, those of
 * deleted entries (a tombstone in the view, or unknown and old) are removed.
 *
 * Loads run in the background, a few at a time; until a registry's inventory is loaded, its presence is
 * unknown. Listeners (the drift keeper) hear of every registry whose inventory changed in memory.
 */
import type { CatalogFeed } from '../feed/reader';
import type { Logger } from '../logger';
import { originPeer, type StoredRegistry } from '../registries/model';
import type { ViewChange } from '../view/catalog-view';
import type { InventoryIndex } from './memory-index';
import { InventoryChanged, type InventoryRepository, type InventoryState } from './repository';
import { SnapshotBuilder } from './snapshot';

/** A state whose entry the view does not know is removed once it is this old (no write can still be coming). */
const ORPHAN_AFTER_MS = 60 * 60_000;
const RETRY_MS = 5000;

type Doc = Readonly<StoredRegistry> | undefined;

function refreshedAt(doc: Doc): string | undefined {
  return doc?.container_registry_storage_info?.observed?.refreshed_at;
}

const isLocal = (doc: Doc): doc is Readonly<StoredRegistry> => doc !== undefined && originPeer(doc) === undefined;

export class InventoryLoader {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private active = 0;
  private readonly listeners = new Set<(id: string) => void>();
  private readonly idle: Array<() => void> = [];
  private unsubscribe?: () => void;
  private stopped = false;

  constructor(
    private readonly repo: InventoryRepository,
    private readonly index: InventoryIndex,
    private readonly feed: CatalogFeed,
    private readonly logger: Logger,
    private readonly concurrency = 4,
  ) {}

  start(): void {
    this.feed.onReady(() => {
      if (this.stopped) return;
      this.unsubscribe = this.feed.subscribe((changes) => this.onChanges(changes));
      void this.initial();
    });
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
  }

  /** `listener(id)` runs after registry `id`'s inventory changed in memory (loaded, replaced or dropped). */
  onChange(listener: (id: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves once no load is queued or running. */
  whenIdle(): Promise<void> {
    if (this.active === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Reads the entry's inventory again (after a refresh this replica ran, without waiting for the feed). */
  reload(id: string): void {
    this.enqueue(id);
  }

  private async initial(): Promise<void> {
    let states: InventoryState[];
    try {
      states = await this.repo.allStates();
    } catch (e) {
      this.logger.warn('inventory: reading the states failed; retrying', { error: String(e) });
      if (!this.stopped) setTimeout(() => void this.initial(), RETRY_MS).unref();
      return;
    }
    for (const state of states) {
      const item = this.feed.view.get(state._id);
      if (isLocal(item?.doc)) {
        if (state.generation > 0) this.enqueue(state._id);
      } else if ((item && !item.doc) || age(state) > ORPHAN_AFTER_MS) {
        void this.remove(state._id);
      }
    }
  }

  private onChanges(changes: readonly ViewChange[]): void {
    for (const { item, before } of changes) {
      if (!item.doc) {
        this.forget(item.id);
        if (item.peer === undefined) void this.remove(item.id);
      } else if (!isLocal(item.doc)) {
        this.forget(item.id);
      } else if (refreshedAt(item.doc) !== refreshedAt(before?.doc)) {
        this.enqueue(item.id);
      }
    }
  }

  private forget(id: string): void {
    if (!this.index.inventoryOf(id) && !this.index.leftOut.has(id)) return;
    this.index.drop(id);
    this.changed(id);
  }

  private async remove(id: string): Promise<void> {
    try {
      await this.repo.remove(id);
    } catch (e) {
      this.logger.warn('inventory: removing the inventory of a deleted entry failed (the next start retries)', { registry_id: id, error: String(e) });
    }
  }

  private changed(id: string): void {
    for (const l of this.listeners) {
      try {
        l(id);
      } catch (e) {
        this.logger.error('inventory: a listener failed', { error: String(e) });
      }
    }
  }

  private enqueue(id: string): void {
    if (this.stopped || this.queued.has(id)) return;
    this.queued.add(id);
    this.queue.push(id);
    this.pump();
  }

  private pump(): void {
    while (this.active < this.concurrency && this.queue.length > 0) {
      const id = this.queue.shift()!;
      this.queued.delete(id);
      this.active++;
      void this.load(id)
        .catch((e: unknown) => {
          if (e instanceof InventoryChanged) return this.enqueue(id);
          this.logger.warn('inventory: loading failed; retrying', { registry_id: id, error: String(e) });
          setTimeout(() => this.enqueue(id), RETRY_MS).unref();
        })
        .finally(() => {
          this.active--;
          this.pump();
          if (this.active === 0 && this.queue.length === 0) for (const resolve of this.idle.splice(0)) resolve();
        });
    }
  }

  /** Brings registry `id`'s snapshot to the generation its state names (or drops it). */
  private async load(id: string): Promise<void> {
    if (!isLocal(this.feed.view.get(id)?.doc)) return this.forget(id);
    const state = await this.repo.state(id);
    if (!state || state.generation === 0 || state.observed_at === null) return this.forget(id);
    if (this.index.inventoryOf(id)?.generation === state.generation) return;
    const builder = new SnapshotBuilder({ registryId: id, generation: state.generation, observedAt: state.observed_at, truncated: state.truncated }, state.tag_count);
    let reserved = 0;
    for (let seq = 0; seq < state.chunks; seq++) {
      for (const row of await this.repo.chunk(state, seq)) builder.add(row);
      if (!this.reserve(id, builder.bytes - reserved)) {
        this.index.unreserve(reserved);
        this.index.drop(id, true);
        this.logger.warn('inventory: left out of memory (INVENTORY_MEMORY_MB is spent); its presence is unknown', { registry_id: id, tags: state.tag_count });
        return this.changed(id);
      }
      reserved = builder.bytes;
    }
    this.index.put(builder.build(), reserved);
    this.changed(id);
  }

  /** Room for `more` bytes; the registry's previous snapshot is given up first when that makes it fit. */
  private reserve(id: string, more: number): boolean {
    if (this.index.reserve(more)) return true;
    if (!this.index.inventoryOf(id)) return false;
    this.index.drop(id);
    return this.index.reserve(more);
  }
}

function age(state: InventoryState): number {
  const at = state.observed_at ? Date.parse(state.observed_at) : state.pending ? new Date(state.pending.started_at).getTime() : NaN;
  return Number.isNaN(at) ? Infinity : Date.now() - at;
}
