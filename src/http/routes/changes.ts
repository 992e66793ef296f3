/**
 * GET /container_registries/changes (SPEC 12): the catalog's change feed, as JSON pages (with an optional
 * long poll) or, with `Accept: text/event-stream`, as Server-Sent Events resumable with Last-Event-ID.
 * Every watcher is served from the replica's one change feed (src/feed/reader.ts): none reads the database.
 */
import { Router, type Request, type Response } from 'express';
import { InputError, ServiceUnavailableError } from '../../errors';
import { checkRetained, collectChanges, ConsumerLens, parseChangesQuery, type ChangeOut, type ChangesQuery } from '../../feed/changes';
import type { CatalogFeed } from '../../feed/reader';
import type { Access } from '../auth';

export interface ChangesRouteOptions {
  feed: CatalogFeed;
  can: Access['can'];
  /** Seconds between SSE bookmarks (heartbeats carrying the current revision). */
  bookmarkSeconds: number;
  /** An SSE watcher whose unsent output exceeds this many bytes is disconnected (it resumes with Last-Event-ID). */
  maxBufferedBytes?: number;
}

/** How long a request waits for this replica's own acknowledged writes to reach the view. */

/** Chunk size of an SSE catch-up: each chunk is read from the view in one synchronous step. */
const SSE_CHUNK = 500;

export function changesRoutes(opts: ChangesRouteOptions): Router {
  const r = Router();
  const { feed } = opts;
  const maxBuffered = opts.maxBufferedBytes ?? 4 * 1024 * 1024;

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
    const sse = (req.get('Accept') ?? '').includes('text/event-stream');
    const q = parseChangesQuery(req.query as Record<string, unknown>, sse ? req.get('Last-Event-ID') : undefined);
    await position(q);
    res.setHeader('X-Catalog-Epoch', feed.epoch);
    const lens = new ConsumerLens(q);
    if (sse) return streamEvents(req, res, q, lens);
    let page = collectChanges(feed.view, lens, q.since, q.limit);
    if (page.changes.length === 0 && q.wait > 0) page = await longPoll(req, q, lens, page.revision);
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
        if (changes.some((c) => lens.fromChange(c) !== null)) finish();
      });
      const timer = setTimeout(finish, q.wait * 1000);
      const unclose = feed.onClose(finish);
      req.socket.once('close', finish);
    });
  }

  async function streamEvents(req: Request, res: Response, q: ChangesQuery, lens: ConsumerLens): Promise<void> {
    res.status(200);
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Accel-Buffering', 'no');
    res.setHeader('X-Catalog-Revision', String(feed.view.revision));
    res.flushHeaders();
    let closed = false;
    req.socket.once('close', () => (closed = true));
    res.write(`retry: 2000\n\n`);
    const write = (c: ChangeOut) => res.write(`id: ${c.revision}\nevent: ${c.type}\ndata: ${JSON.stringify(c)}\n\n`);
    const bookmark = (revision: number) => res.write(`id: ${revision}\nevent: bookmark\ndata: {"revision":${revision}}\n\n`);
    // Catch-up, chunk by chunk; a chunk is read synchronously, so an entry that changes meanwhile moves to
    // a later revision and comes in a later chunk. The last chunk and the subscription share one tick.
    let sent = q.since;
    const listUpTo = q.since === 0 ? feed.view.revision : 0;
    for (;;) {
      const page = collectChanges(feed.view, lens, sent, SSE_CHUNK, listUpTo);
      for (const c of page.changes) write(c);
      // A chunk ends at its limit or when the filter's time slice is over: more is what it did not reach.
      const more = page.revision < feed.view.revision;
      sent = page.revision;
      if (!more) break;
      if (res.writableNeedDrain) {
        // A client that goes away mid catch-up never drains: 'close' ends the wait too.
        await new Promise<void>((resolve) => {
          const done = () => {
            res.off('drain', done);
            res.off('close', done);
            resolve();
          };
          res.once('drain', done);
          res.once('close', done);
        });
      } else await new Promise<void>((resolve) => setImmediate(resolve)); // other work between chunks
      if (closed) return;
    }
    bookmark(sent);
    const unsubscribe = feed.subscribe((changes) => {
      for (const ch of changes) {
        if (ch.item.revision <= sent) continue;
        let c: ChangeOut | null;
        try {
          c = lens.fromChange(ch);
        } catch {
          // The filter cannot be evaluated on this entry in time: end the stream rather than skip the change.
          res.destroy();
          return;
        }
        if (c) write(c);
      }
      sent = Math.max(sent, feed.view.revision);
      if (res.writableLength > maxBuffered) res.destroy();
    });
    const heartbeat = setInterval(() => bookmark(Math.max(sent, feed.view.revision)), opts.bookmarkSeconds * 1000);
    const unclose = feed.onClose(() => res.end());
    const stop = () => {
      unsubscribe();
      unclose();
      clearInterval(heartbeat);
    };
    res.once('close', stop);
    if (closed) stop();
  }

  return r;
}
