/**
 * Keeps the resolver's prefix index (src/resolve/) current from the change feed: loaded from the view
 * once it is ready, then one change at a time, in revision order.
 */
import { toApi, type StoredRegistry } from '../registries/model';
import type { ApiEntry, PrefixIndex } from '../resolve';
import type { CatalogFeed } from './reader';

const asEntry = (doc: Readonly<StoredRegistry>) => toApi(doc as StoredRegistry) as unknown as ApiEntry;

export function feedResolver(feed: CatalogFeed, index: PrefixIndex): void {
  feed.onReady(() => {
    const entries: ApiEntry[] = [];
    for (const item of feed.view.entries()) entries.push(asEntry(item.doc!));
    index.reset(entries);
  });
  feed.subscribe((changes) => {
    for (const c of changes) {
      if (c.item.doc) index.apply({ type: 'upsert', entry: asEntry(c.item.doc) });
      else index.apply({ type: 'delete', container_registry_id: c.item.id });
    }
  });
}
