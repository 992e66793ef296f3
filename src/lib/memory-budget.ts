/**
 * A process-wide budget of bytes held outside the JavaScript heap, shared by everything of one kind: the
 * storage crawls' digest sets (STORAGE_DIGEST_MEMORY_MB) and the inventories kept for /resolve
 * (INVENTORY_MEMORY_MB). Holders take before they allocate and give back when they let go.
 */
/** The bytes every holder of one kind may hold together. */
export class MemoryBudget {
  used = 0;
  /** The most ever held at once. */
  peak = 0;

  constructor(readonly limit: number) {}

  /** Takes `bytes` if they fit (`always`: even if not; a few KB a set may start with). */
  take(bytes: number, always = false): boolean {
    if (!always && this.used + bytes > this.limit) return false;
    this.used += bytes;
    this.peak = Math.max(this.peak, this.used);
    return true;
  }

  give(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }
}

