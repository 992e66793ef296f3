/**
 * Queries and reads by id answered from the in-memory view (SPEC 13), with the consistency the spec promises
 * (the Kubernetes watch-cache rule, docs/queries.md#where-answers-come-from-the-view):
 * - a read includes every write this replica acknowledged before it began (it waits for the view to
 *   reach that revision; the replica's own writes nudge the reader, so this takes milliseconds);
 * - `min_revision=R` waits up to 5 s for the view to reach R, then answers 503;
 * - while the view loads, or has lost touch with the database, reads go to the database (a read by id answered
 *   there is never older than the entry's state this replica's feed holds: EntryWriter.read);
 * - a query runs in time slices (src/view/budget.ts), yielding to other work between them, within
 *   QUERY_TIMEOUT_MS in all (the same limit as a database query): past it, a 503 that names it.
 */
import { InputError, ServiceUnavailableError } from '../errors';
import type { StoredRegistry } from '../registries/model';
import type { QueryPlan } from '../registries/query';
import { FilterBudget } from '../view/budget';
import type { FastReads } from '../registries/service';
import { OWN_WRITES_WAIT_MS, type CatalogFeed } from './reader';

const MIN_REVISION_WAIT_MS = 5000;

/** Runs `plan` over the view in time slices, yielding to the event loop between them. */
async function sliced(feed: CatalogFeed, plan: QueryPlan, timeoutMs: number): Promise<StoredRegistry[]> {
  const budget = new FilterBudget(timeoutMs, 'QUERY_TIMEOUT_MS');
  const run = feed.view.engine.start(plan);
  for (;;) {
    const rows = run.step(budget);
    if (rows) return rows;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/**
 * Waits until the view may answer a read that must include `min` (0: none asked) and every write this replica
 * acknowledged; answers the revision the answer will include, or undefined to read the database instead.
 */
async function servable(feed: CatalogFeed, min: number): Promise<number | undefined> {
  const need = Math.max(feed.acked, min);
  if (feed.isFresh() && feed.view.revision >= need) return feed.view.revision;
  if (!feed.ready && min === 0) return undefined;
  // A revision nobody wrote will never come: say so at once (a client's revisions are logged before it sees them).
  if (min > feed.view.revision && !(await feed.revisionExists(min))) {
    throw new InputError(`min_revision=${min} is beyond the catalog's latest revision (${feed.view.revision}).`, [{ path: 'min_revision', message: `must not exceed the current revision ${feed.view.revision}` }]);
  }
  const reached = await feed.waitFor(need, min > 0 ? MIN_REVISION_WAIT_MS : OWN_WRITES_WAIT_MS);
  if (reached && feed.isFresh()) return feed.view.revision;
  if (!reached && min > 0) {
    throw new ServiceUnavailableError(`The catalog has not reached revision ${min} within ${MIN_REVISION_WAIT_MS / 1000} s (it is at ${feed.view.revision}); try again.`, 1);
  }
  return undefined;
}

export function viewReads(feed: CatalogFeed, timeoutMs: number): FastReads {
  return {
    async query(plan: QueryPlan): Promise<{ rows: StoredRegistry[]; revision: number } | undefined> {
      // The revision the answer is known to include: the one it started from (later slices may see later writes).
      const revision = await servable(feed, plan.minRevision ?? 0);
      return revision === undefined ? undefined : { rows: await sliced(feed, plan, timeoutMs), revision };
    },
    async get(id: string, minRevision?: number): Promise<{ doc: StoredRegistry | null; revision: number } | undefined> {
      const revision = await servable(feed, minRevision ?? 0);
      if (revision === undefined) return undefined;
      const doc = feed.view.get(id)?.doc;
      return { doc: doc ? ({ ...doc } as StoredRegistry) : null, revision };
    },
    revisionFloor(): number | undefined {
      return feed.ready ? feed.materializedThrough() : undefined;
    },
  };
}
