/**
 * The inventories of a replica's registries in memory (SPEC 19), what /resolve, /images and mirror drift read
 * (never a database query per request): one packed snapshot per registry (snapshot.ts), all of them within
 * one memory budget (INVENTORY_MEMORY_MB). A registry whose inventory does not fit is left out: its presence
 * is unknown, as for a registry never refreshed. Filled by the loader (loader.ts). Pure: no database.
 */
import type { MemoryBudget } from '../lib/memory-budget';
import type { InventoryView } from '../resolve/presence';
import type { InventorySnapshot } from './snapshot';

export class InventoryIndex implements InventoryView {
  private readonly snapshots = new Map<string, InventorySnapshot>();
  /** Registries whose inventory did not fit the budget (their presence is unknown). */
  readonly leftOut = new Set<string>();

  constructor(readonly budget: MemoryBudget) {}

  inventoryOf(id: string): InventorySnapshot | undefined {
    return this.snapshots.get(id);
  }

  /** Registries held. */
  get size(): number {
    return this.snapshots.size;
  }

  ids(): IterableIterator<string> {
    return this.snapshots.keys();
  }

  /** Takes `bytes` more for a snapshot being built (false: it does not fit; nothing taken). */
  reserve(bytes: number): boolean {
    return this.budget.take(bytes);
  }

  /** Gives back what `reserve` took for a snapshot that was not kept. */
  unreserve(bytes: number): void {
    this.budget.give(bytes);
  }

  /** Keeps `snapshot` in place of the registry's previous one; `reserved` is what its building took. */
  put(snapshot: InventorySnapshot, reserved: number): void {
    this.remove(snapshot.registryId);
    this.budget.give(reserved);
    this.budget.take(snapshot.bytes, true);
    this.snapshots.set(snapshot.registryId, snapshot);
    this.leftOut.delete(snapshot.registryId);
  }

  /** Forgets the registry's inventory (gone, or its new one does not fit: `leftOut`). */
  drop(id: string, leftOut = false): void {
    this.remove(id);
    if (leftOut) this.leftOut.add(id);
    else this.leftOut.delete(id);
  }

  private remove(id: string): void {
    const old = this.snapshots.get(id);
    if (!old) return;
    this.snapshots.delete(id);
    this.budget.give(old.bytes);
  }
}
