/**
 * Keeps the resolver's prefix index (src/resolve/) current from the change feed: loaded from the view
 * once it is ready, then one change at a time, in revision order. A malformed stored entry
 * (src/registries/stored-shape.ts) is left out of the index (logged once), never fed to it.
 */
import { toApi, type StoredRegistry } from '../registries/model';
import type { BadEntries } from '../registries/stored-shape';
import type { ApiEntry, PrefixIndex } from '../resolve';
import type { CatalogFeed } from './reader';

const asEntry = (doc: Readonly<StoredRegistry>) => toApi(doc as StoredRegistry) as unknown as ApiEntry;

export function feedResolver(feed: CatalogFeed, index: PrefixIndex, bad: BadEntries): void {
  const usable = (doc: Readonly<StoredRegistry> | undefined): doc is Readonly<StoredRegistry> => doc !== undefined && bad.ok(doc, 'resolve');
  feed.onReady(() => {
    const entries: ApiEntry[] = [];
    for (const item of feed.view.entries()) if (usable(item.doc)) entries.push(asEntry(item.doc));
    index.reset(entries);
  });
  feed.subscribe((changes) => {
    for (const c of changes) {
      // A bad state of an entry takes its earlier one out of the index too: /resolve never answers a stale state.
      if (usable(c.item.doc)) index.apply({ type: 'upsert', entry: asEntry(c.item.doc) });
      else index.apply({ type: 'delete', container_registry_id: c.item.id });
    }
  });
}
