/**
 * The in-memory view of the catalog on one replica (the Kubernetes API server's watch cache, small):
 * the latest state of every entry and a tombstone for every entry deleted within the retention, each with
 * the revision of its last change, fed in revision order by the replica's one reader of the change log
 * (src/feed/reader.ts). It answers "what changed after revision R" for the change feed and, through the
 * query engine, serves queries. Pure and synchronous: no database, no HTTP.
 */
import { nameKey, originPeer, type StoredRegistry } from '../registries/model';
import { QueryEngine } from './query-engine';

/** The latest change of one entry: its state (undefined for a tombstone), revision and time. */
export interface ViewItem {
  id: string;
  revision: number;
  at: Date;
  doc?: Readonly<StoredRegistry>;
  /** Tombstones of entries mirrored from a peer keep the peer's name (origin=local consumers skip them). */
  peer?: string;
}

/** A change applied to the view: the entry's item after it, and before it (undefined when new). */
export interface ViewChange {
  item: ViewItem;
  before?: ViewItem;
}

/** One change from the log, as the view takes it. */
export interface ViewRecord {
  revision: number;
  id: string;
  op: 'upsert' | 'delete';
  at: Date;
  doc?: StoredRegistry;
}

export class CatalogView {
  /** Every change up to this revision is applied. */
  revision = 0;
  /** Tombstones older than this were dropped: a `since` below it cannot be answered (410). */
  retained = 0;
  readonly engine: QueryEngine;
  private readonly items = new Map<string, ViewItem>();
  private readonly names = new Map<string, string>();
  /** Revisions in increasing order, with the id each belongs to; stale pairs are skipped and compacted. */
  private revs: number[] = [];
  private ids: string[] = [];
  private stale = 0;
  private liveEntries = 0;

  constructor(sortFields: Iterable<string> = []) {
    this.engine = new QueryEngine(sortFields);
  }

  get size(): number {
    return this.liveEntries;
  }

  get(id: string): ViewItem | undefined {
    return this.items.get(id);
  }

  /** The id of the live entry holding name key `key` (registries/model.ts nameKey: names are unique per origin), if any. */
  nameOwner(key: string): string | undefined {
    return this.names.get(key);
  }

  /**
   * Applies one change (revisions must increase). A record at or below the item's revision is ignored
   * (returns undefined): the view already holds that state or a later one.
   */
  apply(rec: ViewRecord): ViewChange | undefined {
    const before = this.items.get(rec.id);
    if (before && before.revision >= rec.revision) return undefined;
    if (before?.doc) this.names.delete(nameKey(before.doc));
    if (before) this.stale++;
    let item: ViewItem;
    if (rec.op === 'delete' || !rec.doc) {
      item = { id: rec.id, revision: rec.revision, at: rec.at };
      const peer = before?.doc ? originPeer(before.doc) : before?.peer;
      if (peer !== undefined) item.peer = peer;
      this.engine.remove(rec.id);
      if (before?.doc) this.liveEntries--;
    } else {
      this.engine.upsert(rec.doc);
      item = { id: rec.id, revision: rec.revision, at: rec.at, doc: this.engine.get(rec.id)! };
      this.names.set(nameKey(rec.doc), rec.id);
      if (!before?.doc) this.liveEntries++;
    }
    this.items.set(rec.id, item);
    this.push(rec.revision, rec.id);
    if (rec.revision > this.revision) this.revision = rec.revision;
    return { item, before };
  }

  private push(revision: number, id: string): void {
    const last = this.revs.length > 0 ? this.revs[this.revs.length - 1]! : 0;
    // Out of order only while loading (the warm-up scan); forEachSince restores the order first.
    if (revision <= last) this.unsorted = true;
    this.revs.push(revision);
    this.ids.push(id);
    if (this.stale > 1024 && this.stale > this.revs.length / 2) this.compactOrder();
  }

  private unsorted = false;

  /** Restores revision order after an out-of-order load. */
  sortOrder(): void {
    if (!this.unsorted) return;
    const pairs = this.revs.map((r, i) => [r, this.ids[i]!] as const).sort((a, b) => a[0] - b[0]);
    this.revs = pairs.map((p) => p[0]);
    this.ids = pairs.map((p) => p[1]);
    this.unsorted = false;
    this.compactOrder();
  }

  private compactOrder(): void {
    const revs: number[] = [];
    const ids: string[] = [];
    for (let i = 0; i < this.revs.length; i++) {
      if (this.items.get(this.ids[i]!)?.revision !== this.revs[i]) continue;
      revs.push(this.revs[i]!);
      ids.push(this.ids[i]!);
    }
    this.revs = revs;
    this.ids = ids;
    this.stale = 0;
  }

  /**
   * Calls `visit` with every item whose last change is after `since`, in revision order, until it answers
   * false. Several changes of one entry are collapsed into its latest state (SPEC 12 allows it).
   */
  forEachSince(since: number, visit: (item: ViewItem) => boolean): void {
    if (this.unsorted) this.sortOrder();
    let lo = 0;
    let hi = this.revs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.revs[mid]! <= since) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.revs.length; i++) {
      const item = this.items.get(this.ids[i]!);
      if (!item || item.revision !== this.revs[i]) continue;
      if (!visit(item)) return;
    }
  }

  /** Live entries in no particular order. */
  *entries(): IterableIterator<ViewItem> {
    for (const item of this.items.values()) if (item.doc) yield item;
  }

  /** Drops tombstones older than `cutoff`; raises `retained` over them; answers their revisions. */
  dropTombstones(cutoff: Date): number[] {
    const dropped: number[] = [];
    for (const [id, item] of this.items) {
      if (item.doc || item.at >= cutoff) continue;
      this.items.delete(id);
      dropped.push(item.revision);
      this.stale++;
    }
    for (const r of dropped) if (r > this.retained) this.retained = r;
    return dropped;
  }
}

export { originPeer };
