/**
 * GET /container_registries/changes, the pure part: its query parameters, and the changes one consumer
 * gets from the view (SPEC 12). A consumer sees an entry as an upsert while it matches the consumer's
 * filter (and, with origin=local, is not mirrored from a peer); an entry that was deleted, or stopped
 * matching, is a delete. Catching up from since=0 is a list: only upserts.
 */
import { InputError, RevisionExpiredError } from '../errors';
import { integer, single } from '../lib/query-params';
import { toApi, type StoredRegistry } from '../registries/model';
import { parseFilterAt } from '../registries/query';
import { originPeer, type CatalogView, type ViewChange, type ViewItem } from '../view/catalog-view';
import { FilterBudget, SliceOver } from '../view/budget';
import { compileFilter, type FilterPredicate } from '../view/filter';

export const DEFAULT_CHANGES_LIMIT = 500;
export const MAX_CHANGES_LIMIT = 5000;
export const MAX_WAIT_S = 60;

export interface ChangesQuery {
  since: number;
  limit: number;
  /** Long poll: seconds to wait for a change when there is none (0: answer at once). */
  wait: number;
  localOnly: boolean;
  /** The validated filter (stored field names), if any. */
  filter?: Record<string, unknown>;
}

export interface ChangeOut {
  revision: number;
  type: 'upsert' | 'delete';
  container_registry_id: string;
  entry?: Record<string, unknown>;
  at: string;
}

export interface ChangesPage {
  revision: number;
  changes: ChangeOut[];
}

const PARAMS = new Set(['since', 'limit', 'wait', 'filter', 'origin']);

/** Parses the query string; `lastEventId` (SSE resume) stands for `since` when given. */
export function parseChangesQuery(query: Record<string, unknown>, lastEventId?: string): ChangesQuery {
  const unknown = Object.keys(query).filter((k) => !PARAMS.has(k));
  if (unknown.length > 0) {
    throw new InputError(`Unknown query parameters: ${unknown.join(', ')}.`, unknown.map((p) => ({ path: p, message: 'unknown query parameter; use since, limit, wait, filter or origin' })));
  }
  let since = integer(query, 'since', 0, Number.MAX_SAFE_INTEGER, 0);
  if (lastEventId !== undefined && lastEventId !== '') {
    if (!/^\d{1,15}$/.test(lastEventId)) throw new InputError('Last-Event-ID must be a revision sent as an event id.', [{ path: 'Last-Event-ID', message: 'must be an integer revision' }]);
    since = Number(lastEventId);
  }
  const origin = single(query, 'origin');
  if (origin !== undefined && origin !== 'local') throw new InputError('origin can only be "local".', [{ path: 'origin', message: 'must be "local" (leave out entries mirrored from peers)' }]);
  const rawFilter = single(query, 'filter');
  let filter: Record<string, unknown> | undefined;
  if (rawFilter !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(rawFilter);
    } catch {
      throw new InputError('filter must be a JSON object (URL-encoded), as in POST /container_registries.', [{ path: 'filter', message: 'is not valid JSON' }]);
    }
    filter = parseFilterAt(parsed, 'filter');
  }
  return {
    since,
    limit: integer(query, 'limit', 1, MAX_CHANGES_LIMIT, DEFAULT_CHANGES_LIMIT),
    wait: integer(query, 'wait', 0, MAX_WAIT_S, 0),
    localOnly: origin === 'local',
    filter: filter && Object.keys(filter).length > 0 ? filter : undefined,
  };
}

export type ChangeKind = ChangeOut['type'];

/** What one consumer sees of the catalog: whether an entry's state is visible to it. */
export class ConsumerLens {
  private readonly match?: FilterPredicate;

  constructor(private readonly q: Pick<ChangesQuery, 'filter' | 'localOnly'>) {
    if (q.filter) this.match = compileFilter(q.filter);
  }

  /**
   * Whether this consumer sees `doc`. With `budget` (a page's), a SliceOver when its slice is over; without
   * (one live change, one webhook event), a QueryBudgetError when this one evaluation takes more than a slice.
   */
  visible(doc: Readonly<StoredRegistry> | undefined, budget?: FilterBudget): boolean {
    if (!doc) return false;
    if (this.q.localOnly && originPeer(doc) !== undefined) return false;
    if (!this.match) return true;
    if (budget) return this.match(doc, budget);
    try {
      return this.match(doc, new FilterBudget());
    } catch (e) {
      if (e instanceof SliceOver) throw FilterBudget.entryTooSlow();
      throw e;
    }
  }

  /** The kind of change this consumer sees for `item` (whose previous state it may or may not have had), or null. */
  kindOfItem(item: ViewItem, listing: boolean, budget?: FilterBudget): ChangeKind | null {
    if (this.visible(item.doc, budget)) return 'upsert';
    if (listing) return null;
    if (this.q.localOnly && (item.peer !== undefined || (item.doc && originPeer(item.doc) !== undefined))) return null;
    return 'delete';
  }

  /** The kind of change this consumer sees for a live change, knowing the entry's previous state. */
  kindOfChange(c: ViewChange): ChangeKind | null {
    if (this.visible(c.item.doc)) return 'upsert';
    if (c.before && this.visible(c.before.doc)) return 'delete';
    return null;
  }
}

/**
 * A change as consumers get it. It depends only on the item (one revision of one entry) and the kind, never
 * on the consumer: every consumer that sees it gets the same change (which lets streams share its text).
 */
export function changeOf(item: ViewItem, kind: ChangeKind): ChangeOut {
  if (kind === 'delete') return { revision: item.revision, type: 'delete', container_registry_id: item.id, at: item.at.toISOString() };
  return { revision: item.revision, type: 'upsert', container_registry_id: item.id, entry: toApi(item.doc as StoredRegistry), at: item.at.toISOString() };
}

/** 410 when `since` is older than the view's retained history (since=0 is a list and always works). */
export function checkRetained(view: CatalogView, since: number): void {
  if (since > 0 && since < view.retained) {
    throw new RevisionExpiredError(
      `Changes after revision ${since} are no longer kept (deletes are kept for the retention; the oldest position that can be resumed is ${view.retained}). List again with since=0; the current revision is ${view.revision}.`,
      view.revision,
    );
  }
}

/**
 * Visits the changes after `since` one consumer sees, in revision order, until `visit` returns false or the
 * filter's time slice is over (src/view/budget.ts); returns the revision to continue from: the last visited
 * item's when stopped by `visit`, the last evaluated item's when stopped by the slice (below the view's
 * revision: the caller continues from there after other work had its turn). Items up to `listUpTo` are a
 * list (a consumer that starts from 0 holds nothing yet, so they need no deletes). Synchronous: the view does
 * not move while it runs. One entry whose evaluation alone does not fit in a slice is a QueryBudgetError.
 */
export function forEachChange(view: CatalogView, lens: ConsumerLens, since: number, listUpTo: number, visit: (item: ViewItem, kind: ChangeKind) => boolean): number {
  const budget = new FilterBudget();
  let revision = view.revision;
  let evaluated: number | undefined;
  view.forEachSince(since, (item) => {
    let kind: ChangeKind | null;
    try {
      kind = lens.kindOfItem(item, item.revision <= listUpTo, budget);
    } catch (e) {
      if (!(e instanceof SliceOver)) throw e;
      if (evaluated === undefined) throw FilterBudget.entryTooSlow();
      revision = evaluated;
      return false;
    }
    evaluated = item.revision;
    if (kind === null || visit(item, kind)) return true;
    revision = item.revision;
    return false;
  });
  return Math.max(revision, since);
}

/**
 * The changes after `since` for one consumer, at most `limit`, and the revision to continue from. By default
 * the items up to the current revision are a list only when `since` is 0 (see forEachChange).
 */
export function collectChanges(view: CatalogView, lens: ConsumerLens, since: number, limit: number, listUpTo = since === 0 ? view.revision : 0): ChangesPage {
  const changes: ChangeOut[] = [];
  const revision = forEachChange(view, lens, since, listUpTo, (item, kind) => changes.push(changeOf(item, kind)) < limit);
  return { revision, changes };
}
