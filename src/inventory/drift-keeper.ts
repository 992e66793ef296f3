/**
 * Mirror drift as the catalog records it (SPEC 19): each mirror's entry carries `observed.mirror_drift`, the
 * count of its tags whose digest differs from the same tag of the registry it mirrors and the first 100 of
 * them. That small summary is what reaches the change feed, and through it webhooks (`registry.mirror_drift`,
 * src/events/events.ts: derived per change like a health change), the metrics and the status page; the
 * inventories themselves never enter the feed.
 *
 * Drift is derived in memory (src/resolve/drift.ts) where the inventories (memory-index.ts) meet the mirror
 * relation (the prefix index). A mirror's summary changes when its inventory or that of a registry it mirrors
 * changes, or when prefixes or `mirror_of` change; the affected mirrors are recomputed shortly after (a short
 * debounce gathers a sweep's many loads). One replica writes the summaries: the holder of the lease
 * `inventory-drift` (src/db/lease.ts), so that summaries follow one replica's consistent view of the
 * inventories instead of racing; it recomputes every mirror when it takes the lease over. A write goes through
 * the one door of entry writes and only when the summary changed.
 */
import { LeaseHolder, type Leases } from '../db/lease';
import type { CatalogFeed } from '../feed/reader';
import type { ContainerRegistryObserved } from '../generated';
import type { Logger } from '../logger';
import type { StoredRegistry } from '../registries/model';
import type { EntryWriter } from '../registries/writes';
import { mirrorDrift, type PrefixIndex } from '../resolve';
import type { ViewChange } from '../view/catalog-view';
import type { InventoryLoader } from './loader';
import type { InventoryIndex } from './memory-index';

export type MirrorDrift = NonNullable<ContainerRegistryObserved['mirror_drift']>;

/** Drifting tags listed in an entry (all are counted). */
export const DRIFT_LISTED = 100;
const KEY = 'catalog';

export interface DriftKeeperOptions {
  /** How long changes are gathered before the affected mirrors are recomputed. */
  debounceMs: number;
  /** The lease's length; it is renewed every third of it. */
  leaseMs: number;
}

/** The prefixes are related when one is the other or lies under it on a component boundary. */
function related(a: string, b: string): boolean {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  return x === y || x.startsWith(`${y}/`) || y.startsWith(`${x}/`);
}

/** An entry's image prefix and mirror_of (a change of either moves drift). */
function relationOf(doc: Readonly<StoredRegistry> | undefined): { prefix: string | null; mirrors: unknown } {
  return { prefix: doc?.container_registry_image_prefix ?? null, mirrors: (doc?.container_registry_config as { mirror_of?: unknown } | undefined)?.mirror_of ?? null };
}

export class DriftKeeper {
  private readonly dirty = new Set<string>();
  private timer?: NodeJS.Timeout;
  private renewTimer?: NodeJS.Timeout;
  private readonly holder: LeaseHolder;
  private running?: Promise<void>;
  private stopped = false;
  private unsubscribe: Array<() => void> = [];

  constructor(
    private readonly feed: CatalogFeed,
    private readonly resolver: PrefixIndex,
    private readonly inventories: InventoryIndex,
    private readonly loader: InventoryLoader,
    private readonly entries: EntryWriter,
    leases: Leases,
    private readonly logger: Logger,
    private readonly opts: DriftKeeperOptions,
  ) {
    this.holder = new LeaseHolder(leases, KEY);
  }

  start(): void {
    this.feed.onReady(() => {
      if (this.stopped) return;
      this.unsubscribe.push(this.loader.onChange((id) => this.touched(id)));
      this.unsubscribe.push(this.feed.subscribe((changes) => this.onChanges(changes)));
      this.renewTimer = setInterval(() => void this.hold(), Math.max(200, this.opts.leaseMs / 3));
      this.renewTimer.unref();
      void this.hold();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const u of this.unsubscribe.splice(0)) u();
    clearInterval(this.renewTimer);
    clearTimeout(this.timer);
    await this.running;
    await this.holder.release().catch(() => undefined);
  }

  /** Resolves once nothing is waiting to be recomputed (tests). */
  async settled(): Promise<void> {
    while (this.dirty.size > 0 || this.running || this.timer) await new Promise((r) => setTimeout(r, 20));
  }

  private async hold(): Promise<void> {
    try {
      if ((await this.holder.hold()) === 'acquired') this.markAll();
    } catch (e) {
      this.logger.warn('inventory drift: the lease could not be renewed', { error: String(e) });
    }
  }

  private onChanges(changes: readonly ViewChange[]): void {
    for (const { item, before } of changes) {
      const was = relationOf(before?.doc);
      const is = relationOf(item.doc);
      if (JSON.stringify(was) === JSON.stringify(is)) continue;
      // It mirrors (or did): its own summary; it owns a prefix (or did): the summaries of its mirrors.
      if (was.mirrors !== null || is.mirrors !== null) this.dirty.add(item.id);
      for (const p of [was.prefix, is.prefix]) if (p !== null) this.mirrorsOver(p);
    }
    this.schedule();
  }

  /** Registry `id`'s inventory changed: it (a mirror) and the mirrors of what it owns are affected. */
  private touched(id: string): void {
    const entry = this.resolver.entry(id);
    if (entry?.mirrors) this.dirty.add(id);
    if (entry?.own) this.mirrorsOver(entry.own);
    this.schedule();
  }

  /** Marks the mirrors whose mirror_of relates to `prefix` (few: the catalog's mirrors are few). */
  private mirrorsOver(prefix: string): void {
    for (const m of this.resolver.mirrorIds()) {
      if (this.resolver.entry(m)?.mirrors?.some((p) => related(p, prefix))) this.dirty.add(m);
    }
  }

  private markAll(): void {
    for (const m of this.resolver.mirrorIds()) this.dirty.add(m);
    // A mirror that stopped mirroring may still carry a summary: the view says which.
    for (const item of this.feed.view.entries()) if (item.doc?.container_registry_storage_info?.observed?.mirror_drift) this.dirty.add(item.id);
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.stopped || this.dirty.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running ??= this.run().finally(() => {
        this.running = undefined;
        this.schedule();
      });
    }, this.opts.debounceMs);
    this.timer.unref();
  }

  private async run(): Promise<void> {
    // Only the lease holder writes; the others let their marks go (the holder has the same ones).
    const ids = [...this.dirty];
    this.dirty.clear();
    if (!this.holder.holding) return;
    for (const id of ids) {
      if (this.stopped) return;
      try {
        await this.write(id);
      } catch (e) {
        this.logger.warn('inventory drift: the summary could not be written', { registry_id: id, error: String(e) });
      }
    }
  }

  /** The summary mirror `id` should carry: undefined without drift (or not a mirror), null when unknown (leave it). */
  private summaryOf(id: string, current: MirrorDrift | undefined): MirrorDrift | undefined | null {
    const entry = this.resolver.entry(id);
    if (!entry?.mirrors) return undefined;
    const found = mirrorDrift(this.resolver, this.inventories, id);
    if (!found) return null;
    if (found.items.length === 0) return undefined;
    const items = found.items.slice(0, DRIFT_LISTED);
    const same = current && current.tags === found.items.length && JSON.stringify(current.items) === JSON.stringify(items);
    const summary: MirrorDrift = { tags: found.items.length, observed_at: same ? current.observed_at : found.observedAt, items };
    if (found.items.length > DRIFT_LISTED) summary.truncated = true;
    return summary;
  }

  private async write(id: string): Promise<void> {
    await this.entries.modify<void>(id, (doc) => {
      if (!doc) return { kind: 'none', result: undefined };
      const observed = doc.container_registry_storage_info?.observed;
      const current = observed?.mirror_drift;
      const next = this.summaryOf(id, current);
      if (next === null || JSON.stringify(next) === JSON.stringify(current)) return { kind: 'none', result: undefined };
      const merged: Record<string, unknown> = { ...(observed ?? {}) };
      if (next === undefined) delete merged.mirror_drift;
      else merged.mirror_drift = next;
      const storage = { ...(doc.container_registry_storage_info ?? {}), observed: merged };
      return { kind: 'replace', next: { ...doc, container_registry_storage_info: storage } as StoredRegistry, result: undefined };
    });
  }
}
