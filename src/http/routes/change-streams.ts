/**
 * The Server-Sent Events side of the change feed (GET /container_registries/changes with
 * `Accept: text/event-stream`): every open stream of the process, fed by one subscription to the replica's
 * change feed (src/feed/reader.ts).
 *
 * - One serialisation per change: a change's SSE frame depends only on the entry's revision and the kind
 *   (upsert or delete), never on the watcher (src/feed/changes.ts `changeOf`), so each frame is serialised
 *   once and the same string is written to every stream that sees it. Recent frames stay in a small cache for
 *   streams catching up (clients resuming after a drop ask for the same recent revisions).
 * - Live changes are written in slices (FANOUT_SLICE streams per turn of the event loop), one write per
 *   stream and slice however many changes it has waiting: 10,000 streams do not hold the event loop for the
 *   whole fan-out, and when changes come faster than they can be written to every stream they are coalesced
 *   (each stream's next write carries all of them), so the delay to the last stream stays about one fan-out,
 *   instead of growing with a backlog. A stream's frames keep their order (its bookmarks, and its end, follow
 *   what waits for it).
 * - A budget of unsent bytes for all streams together: what a stream was given and its client has not read
 *   yet waits in this process. Before each batch of changes is written, the unsent bytes of all streams are
 *   summed; over FEED_STREAM_BUDGET_BYTES, every stream holding more than its share (the budget divided by the
 *   open streams) is ended. One stream alone is ended as soon as it holds more than STREAM_UNSENT_MAX. An
 *   ended client resumes from its last event with `Last-Event-ID`.
 */
import type { Response } from 'express';
import { AppError } from '../../errors';
import { changeOf, forEachChange, type ChangeKind, type ChangesQuery, type ConsumerLens } from '../../feed/changes';
import type { CatalogFeed } from '../../feed/reader';
import { drainedOrClosed } from '../../lib/writable';
import { recordStreamEnded, recordStreamsUnsent } from '../../observability/metrics';
import type { ViewChange, ViewItem } from '../../view/catalog-view';

/** One stream alone is ended once it holds more unsent bytes than this (or than the whole budget, if smaller). */
export const STREAM_UNSENT_MAX = 4 * 1024 * 1024;
/** A catch-up waits for its client to read once this much is unsent, or after this many events. */
const CATCH_UP_PAUSE_BYTES = 1024 * 1024;
const CATCH_UP_CHUNK = 500;
/** Recent frames kept for catch-ups, in bytes (UTF-16 length). */
const FRAME_CACHE_BYTES = 8 * 1024 * 1024;
/** Streams written to per turn of the event loop when live changes fan out. */
const FANOUT_SLICE = 256;
/** When the service stops, a stream whose client has not read its end by then is cut. */
const END_GRACE_MS = 1000;

/** The key of a frame: the revision names the entry and its state, the sign the kind. */
const frameKey = (item: ViewItem, kind: ChangeKind) => (kind === 'upsert' ? item.revision : -item.revision);

/** The SSE frames of recent changes, oldest evicted first. */
export class FrameCache {
  private readonly frames = new Map<number, string>();
  private bytes = 0;
  /** How many frames were serialised since start (each once while it stays cached). */
  serialised = 0;

  constructor(private readonly maxBytes = FRAME_CACHE_BYTES) {}

  get(item: ViewItem, kind: ChangeKind): string {
    const key = frameKey(item, kind);
    const hit = this.frames.get(key);
    if (hit !== undefined) return hit;
    const frame = `id: ${item.revision}\nevent: ${kind}\ndata: ${JSON.stringify(changeOf(item, kind))}\n\n`;
    this.serialised++;
    this.frames.set(key, frame);
    this.bytes += frame.length;
    for (const [k, f] of this.frames) {
      if (this.bytes <= this.maxBytes || this.frames.size === 1) break;
      this.frames.delete(k);
      this.bytes -= f.length;
    }
    return frame;
  }
}

interface Stream {
  res: Response;
  lens: ConsumerLens;
  /** Every change up to this revision was written (or is not for this consumer). */
  sent: number;
  /** False while catching up: live batches are written to it only once it caught up. */
  live: boolean;
  /** Frames waiting for the fan-out's next slice to reach this stream (their total length in `waitingBytes`). */
  waiting: Buffer[];
  waitingBytes: number;
}

export class ChangeStreams {
  private readonly streams = new Set<Stream>();
  readonly frames = new FrameCache();
  private readonly perStream: number;

  constructor(
    private readonly feed: CatalogFeed,
    private readonly opts: { budgetBytes: number; bookmarkSeconds: number },
  ) {
    this.perStream = Math.min(STREAM_UNSENT_MAX, opts.budgetBytes);
    feed.subscribe((changes) => this.publish(changes));
    feed.onClose(() => {
      for (const s of this.streams) {
        this.flush(s);
        endSoon(s.res);
      }
    });
  }

  /** Open streams. */
  get size(): number {
    return this.streams.size;
  }

  /** Streams the changes after `q.since` to `res`, then live changes, until the client goes or the service stops. */
  async serve(res: Response, q: ChangesQuery, lens: ConsumerLens): Promise<void> {
    const view = this.feed.view;
    res.status(200);
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Accel-Buffering', 'no');
    res.setHeader('X-Catalog-Revision', String(view.revision));
    res.flushHeaders();
    const s: Stream = { res, lens, sent: q.since, live: false, waiting: [], waitingBytes: 0 };
    this.streams.add(s);
    let heartbeat: NodeJS.Timeout | undefined;
    res.once('close', () => {
      this.streams.delete(s);
      clearInterval(heartbeat);
    });
    write(res, 'retry: 2000\n\n');
    // Catch-up, part by part; each part is read and written synchronously, so an entry that changes meanwhile
    // moves to a later revision and comes in a later part. The last part and going live share one tick.
    const listUpTo = q.since === 0 ? view.revision : 0;
    for (;;) {
      let count = 0;
      let paused = false;
      try {
        s.sent = forEachChange(view, lens, s.sent, listUpTo, (item, kind) => {
          write(res, this.frames.get(item, kind));
          paused = ++count >= CATCH_UP_CHUNK || res.writableLength >= CATCH_UP_PAUSE_BYTES;
          return !paused;
        });
      } catch (e) {
        return this.fail(s, e);
      }
      // A part ends at its count or bytes, or when the filter's time slice is over (the view not reached yet).
      if (this.overLimit(s) || (!paused && s.sent >= view.revision)) break;
      // A client that goes away (or is cut) mid catch-up never drains: 'close' ends the wait too.
      if (res.writableNeedDrain) await drainedOrClosed(res);
      else await new Promise<void>((resolve) => setImmediate(resolve)); // other work between parts
      if (!this.streams.has(s) || res.writableEnded) return;
    }
    if (!this.streams.has(s) || res.writableEnded) return;
    bookmark(s, s.sent);
    s.live = true;
    heartbeat = setInterval(() => {
      this.send(s, Buffer.from(bookmarkFrame(Math.max(s.sent, view.revision))));
      this.overLimit(s);
    }, this.opts.bookmarkSeconds * 1000);
  }

  /** Streams with frames waiting, in the order they got them, and where the fan-out is in that list. */
  private fanout: Stream[] = [];
  private fanoutAt = 0;
  private fanoutScheduled = false;

  /**
   * Queues `frame` for `s` (after what already waits for it); the fan-out writes it in a later slice. Frames are
   * encoded once: the same bytes go to every stream (a string would be encoded again for each socket).
   */
  private send(s: Stream, frame: Buffer): void {
    if (s.waiting.length === 0) this.fanout.push(s);
    s.waiting.push(frame);
    s.waitingBytes += frame.length;
    this.unsentAtMost += frame.length;
    if (!this.fanoutScheduled) {
      this.fanoutScheduled = true;
      setImmediate(() => this.fanoutSlice());
    }
  }

  /** Writes what waits for `s`, in one write. */
  private flush(s: Stream): void {
    if (s.waiting.length === 0) return;
    const text = s.waiting.length === 1 ? s.waiting[0]! : Buffer.concat(s.waiting);
    s.waiting = [];
    s.waitingBytes = 0;
    write(s.res, text);
  }

  private fanoutSlice(): void {
    const end = Math.min(this.fanout.length, this.fanoutAt + FANOUT_SLICE);
    for (; this.fanoutAt < end; this.fanoutAt++) {
      const s = this.fanout[this.fanoutAt]!;
      if (!this.streams.has(s)) continue;
      this.flush(s);
      this.overLimit(s);
    }
    if (this.fanoutAt < this.fanout.length) {
      setImmediate(() => this.fanoutSlice());
      return;
    }
    this.fanout = [];
    this.fanoutAt = 0;
    this.fanoutScheduled = false;
  }

  private publish(changes: ViewChange[]): void {
    this.enforceBudget();
    if (this.streams.size === 0) return;
    // Frames of this batch, serialised and encoded once for every stream whatever the cache keeps.
    const batch = new Map<number, Buffer>();
    const frame = (item: ViewItem, kind: ChangeKind) => {
      const key = frameKey(item, kind);
      let f = batch.get(key);
      if (f === undefined) batch.set(key, (f = Buffer.from(this.frames.get(item, kind))));
      return f;
    };
    for (const s of [...this.streams]) {
      if (!s.live) continue;
      try {
        for (const ch of changes) {
          if (ch.item.revision <= s.sent) continue;
          const kind = s.lens.kindOfChange(ch);
          if (kind) this.send(s, frame(ch.item, kind));
          s.sent = ch.item.revision;
        }
      } catch (e) {
        // The filter cannot be evaluated on this change in time: the stream ends rather than skip it.
        this.fail(s, e);
        continue;
      }
      s.sent = Math.max(s.sent, this.feed.view.revision);
      // What waits alone over the limit ends the stream now; with what the socket holds, after the next write.
      if (s.waitingBytes > this.perStream) this.cut(s, 'stream_limit');
    }
  }

  /** The unsent bytes of all streams when last summed, plus every byte queued to a stream since: never less than the true sum. */
  private unsentAtMost = 0;
  private summedAt = 0;

  /**
   * Over the budget, ends every stream holding more than its share of it (its client stopped reading). The
   * streams are summed only when the bound `unsentAtMost` could be over the budget (reading each stream's
   * buffered length costs: summing 10,000 streams before every change took a third of the fan-out).
   */
  private enforceBudget(): void {
    // Also summed every few seconds, for the metric.
    if (this.unsentAtMost <= this.opts.budgetBytes && Date.now() - this.summedAt < 5000) return;
    this.summedAt = Date.now();
    let total = 0;
    for (const s of this.streams) total += unsent(s);
    recordStreamsUnsent(total);
    this.unsentAtMost = total;
    if (total <= this.opts.budgetBytes) return;
    const share = this.opts.budgetBytes / this.streams.size;
    for (const s of [...this.streams]) if (unsent(s) > share) this.cut(s, 'budget');
    this.unsentAtMost = 0;
    for (const s of this.streams) this.unsentAtMost += unsent(s);
  }

  /** Ends `s` (true) when it alone holds more than a stream may. */
  private overLimit(s: Stream): boolean {
    if (unsent(s) <= this.perStream) return false;
    this.cut(s, 'stream_limit');
    return true;
  }

  /**
   * Ends `s` on an error after its 200 went out (a filter that cannot be evaluated in time): the problem is the
   * stream's last event (`event: error`), and the client resumes from its last id once the filter is mended.
   */
  private fail(s: Stream, e: unknown): void {
    const problem = e instanceof AppError ? { status: e.status, title: 'The change feed cannot go on', detail: e.message, ...e.extensions } : { status: 500, title: 'The change feed cannot go on', detail: 'internal error' };
    this.flush(s);
    write(s.res, `event: error\ndata: ${JSON.stringify(problem)}\n\n`);
    this.streams.delete(s);
    endSoon(s.res);
  }

  private cut(s: Stream, reason: 'budget' | 'stream_limit'): void {
    this.streams.delete(s);
    s.res.destroy();
    recordStreamEnded(reason);
  }
}

/** Writes unless the response already ended or was cut (a write after the end would emit an error). */
function write(res: Response, text: string | Buffer): void {
  if (!res.writableEnded && !res.destroyed) res.write(text);
}

function bookmarkFrame(revision: number): string {
  return `id: ${revision}\nevent: bookmark\ndata: {"revision":${revision}}\n\n`;
}

function bookmark(s: Stream, revision: number): void {
  write(s.res, bookmarkFrame(revision));
}

/** What a stream holds that its client has not read: in the socket's buffers, and waiting for the fan-out. */
function unsent(s: Stream): number {
  return s.res.writableLength + s.waitingBytes;
}

/** Ends the stream; a client that has not read up to the end within END_GRACE_MS is cut. */
function endSoon(res: Response): void {
  if (res.writableEnded || res.destroyed) return;
  res.end();
  const cut = setTimeout(() => res.destroy(), END_GRACE_MS);
  cut.unref();
  res.once('close', () => clearTimeout(cut));
}
