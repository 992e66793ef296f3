/**
 * The change feed of one replica: the one reader of the change log (src/db/changelog.ts) that keeps the
 * in-memory view (src/view/catalog-view.ts) current and fans every change out to in-process subscribers
 * (the changes route's long polls and SSE streams, the query view, and later webhooks and federation).
 * No subscriber reads the database on its own. See docs/change-feed.md.
 *
 * Life cycle: warm-up (find the head of the log, then scan the log into the view), then a poll loop that
 * follows the log a few revisions at a time (at once when this replica wrote something), and, on the one
 * replica that claims it each period, compaction of superseded records and expired tombstones.
 *
 * Every replica also checks that the collection caught up with the log (a writer killed between its log
 * insert and its collection write, or one that lost the database in between, leaves the collection behind
 * the log): once a change it did not itself write to the collection is VERIFY_AFTER_MS old and still the
 * entry's latest, the entry is written from it if the collection is behind. At start, the newest changes
 * of the log are checked the same way (the process this one replaces may have died mid-write). See
 * docs/change-feed.md.
 */
import type { Claims } from '../db/atomic';
import { LogTail } from '../db/changelog';
import type { Logger } from '../logger';
import type { StoredRegistry } from '../registries/model';
import { revisionOf, type EntryWriter } from '../registries/writes';
import type { CatalogView, ViewChange } from '../view/catalog-view';

/** A live writer materializes its change within its deadline (8 s); after this long, the change is checked. */
export const VERIFY_AFTER_MS = 10_000;
/** How long a read waits for this replica's feed to hold every write it acknowledged (read-your-writes). */
export const OWN_WRITES_WAIT_MS = 2000;
/** How many of the newest changes a starting replica checks. */
const VERIFY_AT_START = 1000;

export type FeedListener = (changes: ViewChange[]) => void;

export interface FeedOptions {
  /** How often the log is polled when nothing is known to be new. */
  pollMs: number;
  /** Tombstones (and the 410 boundary) are kept this long. */
  retentionMs: number;
  /** How often compaction runs (on one replica per period). */
  compactEveryMs: number;
}

export class CatalogFeed {
  private tail?: LogTail<StoredRegistry>;
  private readonly listeners = new Set<FeedListener>();
  private readonly closers = new Set<() => void>();
  private readonly readyListeners: Array<() => void> = [];
  private readonly waiters = new Set<{ revision: number; resolve: (reached: boolean) => void }>();
  private running = false;
  private closing = false;
  private wake?: () => void;
  private loop?: Promise<void>;
  private lastPollOkAt = 0;
  private headWrittenAt = 0;
  /** The highest revision this replica acknowledged to a client, by a write or an answer from the collection (read-your-writes). */
  acked = 0;
  /** Superseded records and fills, oldest first: what compaction may remove once old enough. */
  private superseded: Array<{ revision: number; at: Date }> = [];
  private compactTimer?: NodeJS.Timeout;
  private warmingUp = true;
  /** Changes read from the log, not yet checked against the collection (`at`: when they were read). */
  private unverified: Array<{ key: string; r: number; at: number }> = [];
  /** The due changes verify() is checking now (out of `unverified`): those from index `checkingFrom` are not settled yet. */
  private checking: Array<{ r: number }> = [];
  private checkingFrom = 0;
  private verifyTimer?: NodeJS.Timeout;
  private verifying = false;
  /** Entries the verification wrote because the collection was behind the log (since start). */
  repaired = 0;
  /** The change log's epoch (read at warm-up; '' before): sent with every changes answer. */
  epoch = '';

  constructor(
    private readonly writer: EntryWriter,
    readonly view: CatalogView,
    private readonly claims: Claims,
    private readonly logger: Logger,
    private readonly opts: FeedOptions,
  ) {
    writer.onWritten((r, acknowledged) => {
      if (acknowledged && r > this.acked) this.acked = r;
      // A revision the view has not read yet (this replica's own write): read the log now.
      if (r > this.view.revision) this.nudge();
    });
    writer.nameOwner = async (key) => {
      if (!this.ready || !(await this.caughtUp())) return undefined;
      return view.nameOwner(key);
    };
    writer.latestKnown = (id) => {
      const item = this.ready ? view.get(id) : undefined;
      return item && { revision: item.revision, doc: item.doc as StoredRegistry | undefined };
    };
  }

  /** True once the view holds the whole catalog. */
  get ready(): boolean {
    return !this.warmingUp;
  }

  /** Ready and in touch with the database within the last second (else reads go to the database). */
  isFresh(): boolean {
    return !this.warmingUp && Date.now() - this.lastPollOkAt < Math.max(1000, this.opts.pollMs * 5);
  }

  subscribe(listener: FeedListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** `ready` runs once the view holds the whole catalog (before any change is published after it). */
  onReady(ready: () => void): void {
    if (this.ready) ready();
    else this.readyListeners.push(ready);
  }

  /** `close` runs when the service stops: watchers end their streams and long polls answer. */
  onClose(close: () => void): () => void {
    this.closers.add(close);
    return () => this.closers.delete(close);
  }

  /** True once the service began to stop: watchers are ended, and new ones must not wait (see closeWatchers). */
  get closed(): boolean {
    return this.closing;
  }

  /**
   * Ends every watcher (the service is stopping; they reconnect to another replica). From then on `closed`
   * is true: a long poll answers at once, a new stream is refused.
   */
  closeWatchers(): void {
    this.closing = true;
    for (const c of [...this.closers]) c();
  }

  /** Resolves true once the view holds every write this replica acknowledged, false after `ms`. */
  caughtUp(ms = OWN_WRITES_WAIT_MS): Promise<boolean> {
    return this.waitFor(this.acked, ms);
  }

  /** Resolves true once the view reached `revision`, false after `ms`. */
  waitFor(revision: number, ms: number): Promise<boolean> {
    if (this.view.revision >= revision && this.ready) return Promise.resolve(true);
    return new Promise((resolve) => {
      const w = { revision, resolve };
      this.waiters.add(w);
      // Beyond this replica's own writes: another process's change, which the tail would otherwise look for
      // only after the head's quiet time (LogTail headEveryMs, half the poll interval).
      if (revision > this.acked) this.tail?.readHeadNow();
      this.nudge();
      setTimeout(() => {
        if (this.waiters.delete(w)) resolve(false);
      }, ms).unref();
    });
  }

  nudge(): void {
    this.wake?.();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
    this.compactTimer = setInterval(() => void this.compact().catch((e) => this.logger.warn('change log compaction failed', { error: String(e) })), this.opts.compactEveryMs);
    this.compactTimer.unref();
    this.verifyTimer = setInterval(() => void this.verify(), 1000);
    this.verifyTimer.unref();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.compactTimer);
    clearInterval(this.verifyTimer);
    this.nudge();
    await this.loop;
    for (const w of this.waiters) w.resolve(false);
    this.waiters.clear();
  }

  private async run(): Promise<void> {
    let backoff = 100;
    while (this.running) {
      try {
        if (this.warmingUp) await this.warmUp();
        await this.pollOnce();
        backoff = 100;
        await this.idle(this.opts.pollMs);
      } catch (e) {
        this.logger.warn('change feed: reading the change log failed; retrying', { error: String(e), retry_in_ms: backoff });
        await this.idle(backoff);
        backoff = Math.min(5000, backoff * 2);
      }
    }
  }

  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }

  /**
   * Entries written before the change log existed (or imported from an older export) have no revision:
   * each is written once through the log, unchanged, so that the view and the feed know them.
   */
  private async backfill(): Promise<number> {
    const legacy = await this.writer.collection.find({ revision: { $exists: false } } as never, { projection: { _id: 1 } }).toArray();
    for (const { _id } of legacy) {
      await this.writer.modify(String(_id), (doc) => (!doc || revisionOf(doc) > 0 ? { kind: 'none', result: undefined } : { kind: 'replace', next: { ...doc }, result: undefined }));
    }
    return legacy.length;
  }

  /** Finds the head of the log, then loads every entry's latest change and every tombstone into the view. */
  private async warmUp(): Promise<void> {
    const started = Date.now();
    const backfilled = await this.backfill();
    const log = this.writer.log;
    this.epoch = await log.epoch();
    // Other replicas' writes are looked for about every poll interval; this replica's own are in memory.
    const tail = new LogTail(log, await log.startHint(), this.opts.pollMs / 2);
    for (;;) if ((await tail.poll()).length === 0) break;
    const head = tail.revision;
    // Each record goes straight into the view as the scan streams it (in no particular order: the view keeps
    // the latest revision of each entry and sorts its order once), so the catalog is held once, not twice.
    const superseded: Array<{ revision: number; at: Date }> = [];
    let records = 0;
    let newest: Array<{ key: string; r: number; at: number }> = [];
    for await (const rec of log.records.find({}, { batchSize: 1000 })) {
      if (rec.r > head) continue;
      records++;
      if (rec.op !== 'fill') {
        newest.push({ key: rec.key, r: rec.r, at: rec.at.getTime() });
        if (newest.length >= 4 * VERIFY_AT_START) newest = newest.sort((a, b) => b.r - a.r).slice(0, VERIFY_AT_START);
      }
      if (rec.op === 'fill') {
        superseded.push({ revision: rec.r, at: rec.at });
        continue;
      }
      const c = this.view.apply({ revision: rec.r, id: rec.key, op: rec.op === 'delete' ? 'delete' : 'upsert', at: rec.at, doc: rec.doc });
      if (!c) superseded.push({ revision: rec.r, at: rec.at });
      else if (c.before) superseded.push({ revision: c.before.revision, at: c.before.at });
    }
    this.view.revision = Math.max(this.view.revision, head);
    this.view.sortOrder();
    this.view.retained = await log.metaValue('retained');
    this.superseded = superseded.sort((a, b) => a.revision - b.revision);
    this.unverified.push(...newest.sort((a, b) => b.r - a.r).slice(0, VERIFY_AT_START));
    this.tail = tail;
    this.lastPollOkAt = Date.now();
    this.warmingUp = false;
    for (const l of this.readyListeners.splice(0)) l();
    this.logger.info('change feed: view ready', { revision: head, entries: this.view.size, records, backfilled, duration_ms: Date.now() - started });
  }

  private async pollOnce(): Promise<void> {
    const tail = this.tail!;
    for (;;) {
      // Small chunks: the view (and the freshness that lets queries use it) moves on while a backlog is read.
      const recs = await tail.poll(256);
      this.lastPollOkAt = Date.now();
      const changes: ViewChange[] = [];
      const now = Date.now();
      for (const rec of recs) {
        if (rec.op !== 'fill') this.unverified.push({ key: rec.key, r: rec.r, at: now });
        const c = this.view.apply({ revision: rec.r, id: rec.key, op: rec.op === 'delete' ? 'delete' : 'upsert', at: rec.at, doc: rec.doc });
        if (!c) continue;
        if (c.before) this.superseded.push({ revision: c.before.revision, at: c.before.at });
        changes.push(c);
      }
      if (tail.revision > this.view.revision) this.view.revision = tail.revision;
      if (changes.length > 0) this.publish(changes);
      this.release();
      if (recs.length < 256) break;
    }
    if (Date.now() - this.headWrittenAt > 1000 && this.view.revision > 0) {
      this.headWrittenAt = Date.now();
      await this.writer.log.raiseMeta('head', this.view.revision);
    }
  }

  private publish(changes: ViewChange[]): void {
    for (const l of this.listeners) {
      try {
        l(changes);
      } catch (e) {
        this.logger.error('change feed: a subscriber failed', { error: String(e) });
      }
    }
  }

  private release(): void {
    for (const w of this.waiters) {
      if (this.view.revision >= w.revision) {
        this.waiters.delete(w);
        w.resolve(true);
      }
    }
  }

  /**
   * Compaction (one replica per period, through a claim): superseded records and fills older than the
   * log's compactAfterMs, and tombstones older than the retention. Every replica drops its own expired
   * tombstones from its view.
   */
  async compact(now = new Date()): Promise<{ compacted: number; expired: number }> {
    if (!this.ready) return { compacted: 0, expired: 0 };
    const log = this.writer.log;
    const horizon = now.getTime() - log.compactAfterMs;
    let cut = 0;
    while (cut < this.superseded.length && this.superseded[cut]!.at.getTime() < horizon) cut++;
    const due = this.superseded.slice(0, cut).map((s) => s.revision);
    const cutoff = new Date(now.getTime() - this.opts.retentionMs);
    const expired = this.view.dropTombstones(cutoff);
    const bucket = Math.floor(now.getTime() / this.opts.compactEveryMs);
    if (!(await this.claims.claimOnce(`feed-compact@${bucket}`))) {
      // Another replica compacts this period; forget what is long past its turn.
      const keepFrom = now.getTime() - 2 * log.compactAfterMs - this.opts.compactEveryMs;
      this.superseded = this.superseded.filter((s) => s.at.getTime() >= keepFrom);
      return { compacted: 0, expired: 0 };
    }
    const compacted = await log.compact(due);
    this.superseded.splice(0, cut);
    let gone = 0;
    if (expired.length > 0) {
      gone = await log.expire(expired);
      await this.writer.pruneTombstones(cutoff);
    }
    if (compacted + gone > 0) this.logger.info('change log compacted', { superseded_removed: compacted, tombstones_expired: gone, floor: await log.metaValue('floor') });
    return { compacted, expired: gone };
  }

  /**
   * Writes each entry whose latest change (read VERIFY_AFTER_MS ago or more, and not written to the
   * collection by this process) the collection does not hold yet. The write is guarded like any materialization: never over a later revision.
   */
  async verify(now = Date.now()): Promise<number> {
    if (this.verifying || !this.ready || this.unverified.length === 0) return 0;
    this.verifying = true;
    let wrote = 0;
    try {
      const due = this.unverified.filter((u) => now - u.at >= VERIFY_AFTER_MS);
      if (due.length === 0) return 0;
      this.unverified = this.unverified.filter((u) => now - u.at < VERIFY_AFTER_MS);
      this.checking = due;
      for (let i = 0; i < due.length; i++) {
        const u = due[i]!;
        this.checkingFrom = i;
        if (this.writer.takeComplete(u.r)) continue; // written to the collection here
        const item = this.view.get(u.key);
        if (!item || item.revision !== u.r) continue; // superseded: the later change is checked (or was written here)
        try {
          if (await this.writer.materializeState(u.key, u.r, item.doc as StoredRegistry | undefined)) wrote++;
        } catch (e) {
          // The database is away: keep the rest for the next round.
          this.unverified.push(...due.slice(i));
          this.logger.warn('change feed: checking the collection against the log failed; retrying', { error: String(e) });
          break;
        }
      }
      if (wrote > 0) {
        this.repaired += wrote;
        this.logger.warn('change feed: the collection was behind the log (a writer died mid-write); entries written from the log', { entries: wrote });
      }
      return wrote;
    } finally {
      this.checking = [];
      this.checkingFrom = 0;
      this.verifying = false;
    }
  }

  /**
   * A revision every change up to which the collection is known to hold (a database-served answer includes
   * them all): below every change not yet checked against the collection (verify: another process's change,
   * or one of this process's whose write of the collection failed), and at most the view's. The collection
   * trails the log while a writer is between its two steps, or died or failed there (found by
   * `npm run robustness`: a query answered from the database said X-Catalog-Revision 203 and showed an entry
   * at 201, because the writer of 203 had lost the database before writing the collection).
   */
  materializedThrough(): number {
    let floor = this.view.revision;
    for (const u of this.unverified) if (u.r <= floor && !this.writer.isComplete(u.r)) floor = u.r - 1;
    for (let i = this.checkingFrom; i < this.checking.length; i++) if (this.checking[i]!.r <= floor) floor = this.checking[i]!.r - 1;
    return Math.max(0, floor);
  }

  /** Whether revision `r` exists in the log (tells a `since` from another replica from a made-up one). */
  async revisionExists(r: number): Promise<boolean> {
    return r <= this.view.revision || (await this.writer.log.read(r)) !== null;
  }
}
