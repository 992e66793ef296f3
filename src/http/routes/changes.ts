/**
 * GET /container_registries/changes (SPEC 12): the catalog's change feed, as JSON pages (with an optional
 * long poll) or, with `Accept: text/event-stream`, as Server-Sent Events resumable with Last-Event-ID.
 * Every watcher is served from the replica's one change feed (src/feed/reader.ts): none reads the database.
 */
import { Router, type Request, type Response } from 'express';
import { InputError, ServiceUnavailableError } from '../../errors';
import { checkRetained, collectChanges, ConsumerLens, parseChangesQuery, type ChangesQuery } from '../../feed/changes';
import type { CatalogFeed } from '../../feed/reader';
import type { Access } from '../auth';
import type { ChangeStreams } from './change-streams';

export interface ChangesRouteOptions {
  feed: CatalogFeed;
  can: Access['can'];
  /** The process's SSE streams (one subscription to the feed, shared frames, a budget of unsent bytes). */
  streams: ChangeStreams;
}

export function changesRoutes(opts: ChangesRouteOptions): Router {
  const r = Router();
  const { feed, streams } = opts;

  /**
   * Waits until the view is ready, holds every write this replica acknowledged (read-your-writes, as for
   * queries), and has caught up with `since` (another replica may be ahead).
   */
  async function position(q: ChangesQuery): Promise<void> {
    if (!feed.ready && !(await feed.waitFor(0, 5000))) throw new ServiceUnavailableError('The change feed is starting (loading the catalog); try again shortly.', 2);
    if (feed.acked > feed.view.revision) await feed.caughtUp();
    if (q.since > feed.view.revision && !(await feed.waitFor(q.since, 2000))) {
      if (await feed.revisionExists(q.since)) throw new ServiceUnavailableError(`This replica has not yet read revision ${q.since}; try again.`, 1);
      throw new InputError(`since=${q.since} is beyond the catalog's latest revision (${feed.view.revision}).`, [{ path: 'since', message: `must not exceed the current revision ${feed.view.revision}` }]);
    }
    checkRetained(feed.view, q.since);
  }

  r.get('/container_registries/changes', opts.can('read'), async (req: Request, res: Response) => {
    // Negotiated, so that `text/event-stream;q=0` (not acceptable) gets no stream.
    const sse = req.accepts(['application/json', 'text/event-stream']) === 'text/event-stream';
    const q = parseChangesQuery(req.query as Record<string, unknown>, sse ? req.get('Last-Event-ID') : undefined);
    await position(q);
    res.setHeader('X-Catalog-Epoch', feed.epoch);
    const lens = new ConsumerLens(q);
    if (sse) {
      if (feed.closed) throw new ServiceUnavailableError('This replica is stopping; reconnect (to another replica) with Last-Event-ID.', 1);
      return streams.serve(res, q, lens);
    }
    let page = collectChanges(feed.view, lens, q.since, q.limit);
    // Once the service stops, a long poll answers at once with what there is.
    if (page.changes.length === 0 && q.wait > 0 && !feed.closed) page = await longPoll(req, q, lens, page.revision);
    res.setHeader('X-Catalog-Revision', String(feed.view.revision));
    res.json({ ...page, epoch: feed.epoch });
  });

  /** Waits up to `wait` seconds for a change this consumer sees; answers the (possibly empty) page. */
  function longPoll(req: Request, q: ChangesQuery, lens: ConsumerLens, from: number) {
    return new Promise<ReturnType<typeof collectChanges>>((resolve, reject) => {
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        unsubscribe();
        unclose();
        req.socket.off('close', finish);
        clearTimeout(timer);
        try {
          resolve(collectChanges(feed.view, lens, from, q.limit));
        } catch (e) {
          reject(e); // the filter ran out of time (503): answered, not thrown out of a timer
        }
      };
      const unsubscribe = feed.subscribe((changes) => {
        try {
          if (changes.some((c) => lens.kindOfChange(c) !== null)) finish();
        } catch {
          finish(); // a change the filter cannot be evaluated on in time: the page tells (503)
        }
      });
      const timer = setTimeout(finish, q.wait * 1000);
      const unclose = feed.onClose(finish);
      req.socket.once('close', finish);
    });
  }

  return r;
}
