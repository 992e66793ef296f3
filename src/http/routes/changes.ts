/**
 * GET /container_registries/changes (SPEC 12): the catalog's change feed, as JSON pages (with an optional
 * long poll) or, with `Accept: text/event-stream`, as Server-Sent Events resumable with Last-Event-ID.
 * Every watcher is served from the replica's one change feed (src/feed/reader.ts): none reads the database.
 */
import { Router, type Request, type Response } from 'express';
import { InputError, ServiceUnavailableError } from '../../errors';
import { type ChangesQuery, checkRetained, collectChanges, ConsumerLens, DEFAULT_CHANGES_LIMIT, MAX_CHANGES_LIMIT, MAX_WAIT_S, parseChangesQuery } from '../../feed/changes';
import type { CatalogFeed } from '../../feed/reader';
import type { Access } from '../auth';
import type { ChangeStreams } from './change-streams';
import { op, problem, ref, type ApiPaths } from '../api-doc';

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

/** The change feed. (OpenAPI; assembled by src/openapi.ts) */
export const changesApi: ApiPaths = {
  '/container_registries/changes': {
    get: op('read', 'Follow the catalog: the changes after a revision (JSON page, long poll, or Server-Sent Events)', {
      operationId: 'catalogChanges',
      description:
        'List-then-watch (SPEC 12): start with since=0 (a list of every entry), then pass the returned `revision` as `since`. With `wait` the request waits for a change. With `Accept: text/event-stream` (preferred over JSON; `q=0` refuses it) the same URL streams events `upsert`, `delete` and `bookmark` (heartbeat) with `id:` = revision; reconnect with `Last-Event-ID` to resume (also after the stream was ended because its client did not read: FEED_STREAM_BUDGET_BYTES).',
      parameters: [
        { name: 'since', in: 'query', description: 'Revision to continue from (0: list everything).', schema: { type: 'integer', minimum: 0, default: 0 } },
        { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: MAX_CHANGES_LIMIT, default: DEFAULT_CHANGES_LIMIT } },
        { name: 'wait', in: 'query', description: 'Long poll: seconds to wait when nothing is newer than `since`.', schema: { type: 'integer', minimum: 0, maximum: MAX_WAIT_S, default: 0 } },
        { name: 'filter', in: 'query', description: 'A query filter as JSON (same rules as POST /container_registries); an entry that stops matching is a delete.', schema: { type: 'string' } },
        { name: 'origin', in: 'query', description: '`local`: leave out entries mirrored from peer catalogs.', schema: { type: 'string', enum: ['local'] } },
        { name: 'Last-Event-ID', in: 'header', required: false, description: 'SSE resume: the id of the last event received (stands for `since`).', schema: { type: 'string' } },
      ],
      responses: {
        '200': {
          description: 'The changes after `since` (JSON), or an event stream.',
          headers: {
            'X-Catalog-Revision': { description: 'The revision this replica has read up to.', schema: { type: 'string' } },
            'X-Catalog-Epoch': {
              description: "The catalog's feed epoch (also `epoch` in a JSON page; the only place an event stream carries it). Revisions belong to one epoch: a new one (a restore by db:import, a new database) means list again from since=0.",
              schema: { type: 'string' },
            },
          },
          content: { 'application/json': { schema: ref('ChangePage') }, 'text/event-stream': { schema: { type: 'string' } } },
        },
        '400': problem('Invalid parameter, or `since` beyond the latest revision.'),
        '410': problem('`since` is older than the retained history (type ends in /revision-expired; `revision` carries the current revision): list again from since=0.'),
        '503': problem('The replica is loading the catalog or has not yet read `since`, or (a stream) it is stopping; retry (a stream: with `Last-Event-ID`).'),
      },
    }),
  },
};
