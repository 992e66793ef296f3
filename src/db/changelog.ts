/**
 * The change log: one ordered history of a keyed collection, built from the only write FerretDB v1 makes
 * atomically (a unique-index insert). It is both the revision allocator and the per-key compare-and-set.
 * The design, and why no consumer can skip a change, is in docs/change-feed.md; in short:
 *
 * - A change is one record `{_id: "<r, zero-padded>", r, key, prev, op, doc}` inserted in one insert. `r`
 *   is the catalog revision (the `_id` is its text: FerretDB v1 pushes an `_id` lookup down to SQLite only
 *   for strings and ObjectIds, and scans the whole collection for a number); the unique index on `(key, prev)` makes "the change that follows state `prev` of `key`"
 *   winnable once, so two writers that read the same state cannot both commit (no lost update).
 * - Revisions may commit out of order (r+1 before r), but readers only ever advance over a contiguous
 *   prefix of revisions (LogTail). A revision nobody commits within `holeFillMs` (its writer died or
 *   stalled) is filled by any reader with a `fill` record; the late writer then loses the insert and
 *   retries at another revision. So a reader never moves past a revision that can still appear later.
 * - Compaction removes records that a later record of the same key supersedes (and fills), only when
 *   older than `compactAfterMs`, after raising `floor` (gaps at or below it are compaction, not holes);
 *   deletes ("tombstones") are removed after the retention, after raising `retained` (the 410 boundary).
 * - The log has an epoch: a random value chosen once (one insert, so replicas agree) and kept across
 *   restarts. An import gives it a new one (renewEpochs): revisions after a restore are another history,
 *   and a follower that sees another epoch lists again rather than trust a position from the old one.
 *
 * This module knows nothing of registries: keys are strings and documents are opaque.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { BSON, type Collection, type Db, type Document, type Filter } from 'mongodb';
import { isDuplicateKey, refusals, upsertShared } from './atomic';
import { ensureIndexes } from './indexes';
import { MAX_BSON_DOCUMENT_BYTES } from './storable';

export type ChangeOp = 'upsert' | 'delete' | 'fill';

/** The `_id` of revision `r`: its decimal text, zero-padded so that text order is revision order. */
export function revisionId(r: number): string {
  return String(r).padStart(16, '0');
}

export interface LogRecord<D = Document> {
  /** revisionId(r). */
  _id: string;
  /** The revision. */
  r: number;
  /** The changed document's key; `~fill` for fill records. */
  key: string;
  /** The revision of the state of `key` this change follows (0: the key had no state). */
  prev: number;
  op: ChangeOp;
  /** The state after the change (upserts only). */
  doc?: D;
  at: Date;
  /** The appending process, to recognise one's own record after an ambiguous failure. */
  w: string;
}

export interface Change<D> {
  key: string;
  prev: number;
  op: 'upsert' | 'delete';
  /** The document as of this change; its revision is set by `stamp` once the revision is known. */
  doc?: D;
}

interface Pending<D> {
  change: Change<D>;
  deadline: number;
  /** The size of its record (known once it was checked against the document limit). */
  bytes?: number;
  resolve: (r: number) => void;
  reject: (e: unknown) => void;
}

export interface ChangeLogOptions {
  /** A revision missing this long while a later one exists is filled (its writer died). */
  holeFillMs?: number;
  /** Superseded records are compacted only when older than this. */
  compactAfterMs?: number;
  /** Sets the revision into a document before it is written (the log stores the stamped document). */
  stamp?: (doc: Document, revision: number) => void;
  name?: string;
}

/** The change that follows `(key, prev)` was already written by another writer: re-read and re-plan. */
export class ChangeConflict extends Error {
  constructor(readonly key: string, readonly prev: number) {
    super(`another change of ${key} after revision ${prev} was written first`);
  }
}

/** Every revision tried was taken by other writers until the deadline (heavy contention). */
export class AppendTimeout extends Error {}

/** The change's record would be over BSON's document limit: refused before anything is written (no revision is used). */
export class RecordTooLarge extends Error {
  constructor(readonly key: string, readonly bytes: number) {
    super(`the change of ${key} is ${bytes} bytes as a log record, over the ${MAX_BSON_DOCUMENT_BYTES}-byte limit of a document`);
  }
}

const FILL_KEY = '~fill';
/** Own committed records kept for this process's tails (ChangeLog.keep): at most this many, and bytes. */
const COMMITTED_KEPT = 4096;
const COMMITTED_KEPT_BYTES = 32 * 1024 * 1024;
const META_FLOOR = 'floor';
const META_RETAINED = 'retained';
const META_HEAD = 'head';
const META_EPOCH = 'epoch';

interface MetaDoc {
  _id: string;
  r: number;
  at: Date;
  /** The log's epoch (the `epoch` document only). */
  epoch?: string;
}

/** A new epoch: 96 random bits, URL-safe text. */
export function newEpoch(): string {
  return randomBytes(12).toString('base64url');
}

/** The meta collection of the change log stored in collection `name`. */
export function metaCollection(name: string): string {
  return `${name}_meta`;
}

/**
 * Gives each change log whose meta collection is among `collections` a new epoch (after an import: the
 * imported revisions are another history than the one followers of the source may have read past).
 * Answers how many logs got one.
 */
export async function renewEpochs(db: Db, collections: readonly string[], where: (name: string) => string = (name) => name): Promise<number> {
  let renewed = 0;
  for (const name of collections.filter((c) => c.endsWith(metaCollection('')))) {
    const r = await db.collection<MetaDoc>(where(name)).updateOne({ _id: META_EPOCH, epoch: { $exists: true } }, { $set: { epoch: newEpoch(), at: new Date() } });
    renewed += r.matchedCount;
  }
  return renewed;
}

export class ChangeLog<D extends Document = Document> {
  readonly records: Collection<LogRecord<D>>;
  readonly meta: Collection<MetaDoc>;
  readonly holeFillMs: number;
  readonly compactAfterMs: number;
  private readonly stamp: (doc: Document, revision: number) => void;
  /** Told the size of every batch of changes appended together (the service's metrics). */
  onBatch?: (size: number) => void;
  /** Stamped on every record this process writes (`w`): tells its own records from other processes'. */
  readonly writerId = randomBytes(8).toString('hex');
  /** The lowest revision this process may still hand out; grows with everything it sees. */
  private nextLocal = 1;
  /** The highest revision observe() was told of (nextLocal also grows with this process's own allocations). */
  private observed = 0;

  constructor(db: Db, opts: ChangeLogOptions = {}) {
    const name = opts.name ?? 'catalog_changes';
    this.records = db.collection<LogRecord<D>>(name);
    this.meta = db.collection<MetaDoc>(metaCollection(name));
    this.holeFillMs = opts.holeFillMs ?? 2000;
    this.compactAfterMs = opts.compactAfterMs ?? 10 * 60_000;
    this.stamp = opts.stamp ?? ((doc, r) => void (doc.revision = r));
  }

  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.records, [{ key: { key: 1, prev: 1 }, name: 'key_prev_unique', unique: true }]);
  }

  /**
   * Positions the allocator at the head of the log (from the head hint the readers keep, then forward):
   * without it a new process would collide with every existing revision once. Answers the head.
   */
  async init(): Promise<number> {
    const tail = new LogTail(this, await this.startHint());
    while ((await tail.poll()).length > 0);
    this.observe(tail.revision);
    return tail.revision;
  }

  /** Tells the allocator that revision `r` exists (seen by a reader, or collided with). */
  observe(r: number): void {
    if (r >= this.nextLocal) this.nextLocal = r + 1;
    if (r > this.observed) this.observed = r;
  }

  /** The highest revision this process was told exists (observe): tails read up to it without delay. */
  get knownToExist(): number {
    return this.observed;
  }

  /** A revision to try for a change that follows `prev`: above everything this process knows of. */
  private allocate(prev: number): number {
    const r = Math.max(this.nextLocal, prev + 1);
    this.nextLocal = r + 1;
    return r;
  }

  /**
   * Appends one change. Resolves to its revision; throws ChangeConflict when the change after
   * `(key, prev)` exists already. `deadline` bounds the retries over revisions taken by other writers.
   *
   * Appends are grouped: the changes queued while one insertMany is in flight go out together in the next
   * one, at consecutive revisions. So a replica competes with other replicas for revisions once per batch
   * rather than once per writer (48 concurrent writers on three replicas otherwise collide on the same
   * few revisions over and over), and a burst of writes costs one round trip per batch.
   */
  append(change: Change<D>, deadline = Date.now() + 8000): Promise<number> {
    return new Promise((resolve, reject) => {
      this.queue.push({ change, deadline, resolve, reject });
      if (!this.flushing) this.flushing = this.flushLoop();
    });
  }

  /**
   * Appends changes of distinct keys together. Each result is the revision, or why that change was not
   * appended (a ChangeConflict, a RecordTooLarge, the database's refusal of that record) or may not have
   * been (an error of the database's connection): one change that fails never fails the others.
   */
  async appendMany(changes: Change<D>[]): Promise<Array<number | Error>> {
    return Promise.all(changes.map((c) => this.append(c).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))))));
  }

  private readonly queue: Pending<D>[] = [];
  private flushing?: Promise<void>;

  private async flushLoop(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, 500);
        const collided = await this.flushBatch(batch).catch((e: unknown) => {
          // Not a database answer (a bug, a document that cannot be serialised): its callers get the error.
          for (const p of batch) p.reject(e);
          return false;
        });
        // Another process took revisions this batch wanted (replicas writing at once pick the same ones):
        // learn how far its writes reach, and wait a random moment, so the next batch does not collide again.
        if (collided) await this.skipTaken();
      }
    } finally {
      this.flushing = undefined;
      if (this.queue.length > 0) this.flushing = this.flushLoop();
    }
  }

  /** Moves the allocator past revisions other processes have written just above it (one parallel probe). */
  private async skipTaken(): Promise<void> {
    const base = this.nextLocal;
    const found = await Promise.all(Array.from({ length: 16 }, (_, i) => this.records.findOne({ _id: revisionId(base + i) } as Filter<LogRecord<D>>, { projection: { _id: 1 } }).catch(() => null)));
    found.forEach((f, i) => f && this.observe(base + i));
    await sleep(Math.random() * 15);
  }

  /** The changes whose records fit in a document; the others are refused at once, before any revision is allocated. */
  private fitting(batch: Pending<D>[]): Pending<D>[] {
    return batch.filter((p) => {
      // The largest revision a record can carry: its size does not depend on which one it gets.
      const bytes = BSON.calculateObjectSize(this.record(p.change, Number.MAX_SAFE_INTEGER));
      p.bytes = bytes;
      if (bytes <= MAX_BSON_DOCUMENT_BYTES) return true;
      p.reject(new RecordTooLarge(p.change.key, bytes));
      return false;
    });
  }

  /** Writes one batch; true when some of its revisions were taken by another writer (they are queued again). */
  private async flushBatch(all: Pending<D>[]): Promise<boolean> {
    const batch = this.fitting(all);
    if (batch.length === 0) return false;
    const recs = batch.map((p) => this.record(p.change, this.allocate(p.change.prev)));
    this.onBatch?.(recs.length);
    let failed = new Map<number, 'duplicate' | Error>();
    try {
      if (recs.length === 1) await this.records.insertOne(recs[0]!);
      else await this.records.insertMany(recs, { ordered: false });
    } catch (e) {
      const refused = refusals(e, recs.length);
      if (!refused) {
        // Unknown outcome (the database went away...): each record is in the log or a hole (filled by
        // readers). One that landed is written to the collection by the feed's check (CatalogFeed.verify).
        for (const p of batch) p.reject(e);
        return false;
      }
      failed = refused;
    }
    const outcomes = await Promise.all(recs.map((rec, i) => this.outcome(rec, failed.get(i))));
    let collided = false;
    for (const [i, p] of batch.entries()) {
      const o = outcomes[i];
      if (o === 'stored' || o === 'ours') {
        this.keep(recs[i]!, p.bytes ?? 0);
        p.resolve(recs[i]!.r);
      }
      else if (o === 'conflict') p.reject(new ChangeConflict(p.change.key, p.change.prev));
      else if (o !== 'taken') p.reject(o);
      else if (Date.now() > p.deadline) p.reject(new AppendTimeout(`no free revision found before the deadline (last tried ${recs[i]!.r})`));
      else {
        collided = true;
        this.queue.push(p);
      }
    }
    return collided;
  }

  /**
   * What became of one record of a batch: stored; refused by a unique index (see afterDuplicate); or refused
   * for another reason (the others of the batch are stored): its revision is then a hole, filled at once.
   */
  private async outcome(rec: LogRecord<D>, refused: 'duplicate' | Error | undefined): Promise<'stored' | 'ours' | 'taken' | 'conflict' | unknown> {
    if (refused === undefined) return 'stored';
    if (refused === 'duplicate') return this.afterDuplicate(rec).catch((e: unknown) => e);
    await this.fill(rec.r).catch(() => undefined);
    return refused;
  }

  private record(change: Change<D>, r: number): LogRecord<D> {
    let doc = change.doc;
    if (doc) {
      doc = { ...doc };
      this.stamp(doc, r);
    }
    const rec: LogRecord<D> = { _id: revisionId(r), r, key: change.key, prev: change.prev, op: change.op, at: new Date(), w: this.writerId };
    if (doc) rec.doc = doc;
    return rec;
  }

  /**
   * Why the insert of `rec` was refused. The revision exists: ours (an earlier attempt did land); another
   * writer's change after the same state of the same key (the race for `(key, prev)` is lost whatever
   * revision we try next: a conflict, at once); or another change (try another revision). It does not: the
   * `(key, prev)` index refused it — our revision is now a hole that we fill at once rather than make
   * readers wait for `holeFillMs`.
   */
  private async afterDuplicate(rec: LogRecord<D>): Promise<'ours' | 'taken' | 'conflict'> {
    const at = await this.records.findOne({ _id: rec._id } as Filter<LogRecord<D>>);
    if (at) {
      this.observe(rec.r);
      if (at.key !== rec.key || at.prev !== rec.prev) return 'taken';
      return at.w === rec.w ? 'ours' : 'conflict';
    }
    await this.fill(rec.r).catch(() => undefined);
    return 'conflict';
  }

  /** Writes a fill record at `r` unless something is there; true when this call filled it. */
  async fill(r: number): Promise<boolean> {
    try {
      const rec: LogRecord<D> = { _id: revisionId(r), r, key: FILL_KEY, prev: r, op: 'fill', at: new Date(), w: this.writerId };
      await this.records.insertOne(rec);
      this.keep(rec, 0);
      return true;
    } catch (e) {
      if (isDuplicateKey(e)) return false;
      throw e;
    }
  }

  async read(r: number): Promise<LogRecord<D> | null> {
    return this.records.findOne({ _id: revisionId(r) } as Filter<LogRecord<D>>);
  }

  /**
   * Records this process committed (the insert was acknowledged, so the record at that revision is this
   * one: nobody can fill or overwrite it), until a tail of this process has passed them: the tail takes them
   * from here instead of reading back what it just wrote (docs/change-feed.md, "Reading one's own writes").
   * Bounded in count and bytes: a record evicted early is only read from the database, as before.
   */
  private readonly committed = new Map<number, { rec: LogRecord<D>; bytes: number }>();
  private committedBytes = 0;

  private keep(rec: LogRecord<D>, bytes: number): void {
    this.committed.set(rec.r, { rec, bytes });
    this.committedBytes += bytes;
    // Oldest commit first (a Map iterates in insertion order).
    for (const [r, c] of this.committed) {
      if (this.committed.size <= COMMITTED_KEPT && this.committedBytes <= COMMITTED_KEPT_BYTES) break;
      this.committed.delete(r);
      this.committedBytes -= c.bytes;
    }
  }

  /** A copy of the record this process committed at revision `r` (as a read would give), while it keeps it. */
  committedRecord(r: number): LogRecord<D> | undefined {
    const kept = this.committed.get(r);
    // A copy: the writer's objects (shared with its caller's answer) never become the view's.
    return kept && structuredClone(kept.rec);
  }

  /** A tail has handed out every revision up to `r`: the records kept for it are no longer needed. */
  passed(r: number): void {
    if (this.committed.size === 0) return;
    for (const [k, c] of this.committed) {
      if (k > r) continue;
      this.committed.delete(k);
      this.committedBytes -= c.bytes;
    }
  }

  /** The record that follows state `prev` of `key` (a scan on FerretDB v1: used only to repair). */
  async findAfter(key: string, prev: number): Promise<LogRecord<D> | null> {
    return this.records.findOne({ key, prev } as Filter<LogRecord<D>>);
  }

  async metaValue(id: 'floor' | 'retained' | 'head'): Promise<number> {
    const d = await this.meta.findOne({ _id: id });
    return d?.r ?? 0;
  }

  /** Raises a meta value (never lowers it). Only the compacting replica writes floor and retained. */
  async raiseMeta(id: 'floor' | 'retained' | 'head', r: number): Promise<void> {
    const cur = await this.metaValue(id);
    if (r <= cur) return;
    await upsertShared(this.meta, { _id: id, r: { $lt: r } }, { $set: { r, at: new Date() } });
  }

  /** The log's epoch, chosen (once, by whichever process asks first) when the log has none yet. */
  async epoch(): Promise<string> {
    const found = await this.meta.findOne({ _id: META_EPOCH });
    if (found?.epoch) return found.epoch;
    try {
      await this.meta.insertOne({ _id: META_EPOCH, r: 0, at: new Date(), epoch: newEpoch() });
    } catch (e) {
      // Another process chose it at the same moment: its choice stands.
      if (!isDuplicateKey(e)) throw e;
    }
    const chosen = await this.meta.findOne({ _id: META_EPOCH });
    if (!chosen?.epoch) throw new Error(`${this.meta.collectionName} holds an epoch document without an epoch`);
    return chosen.epoch;
  }

  /** Where a new reader starts probing: every revision up to here is committed, filled or compacted. */
  async startHint(): Promise<number> {
    const [head, floor] = await Promise.all([this.metaValue(META_HEAD), this.metaValue(META_FLOOR)]);
    return Math.max(head, floor);
  }

  /**
   * Removes the records at `revisions` (superseded or fills, all older than compactAfterMs, chosen by the
   * caller), after raising the floor over them; one delete by `_id` each (pushed down on FerretDB v1).
   */
  async compact(revisions: number[]): Promise<number> {
    if (revisions.length === 0) return 0;
    await this.raiseMeta(META_FLOOR, revisions.reduce((a, b) => Math.max(a, b), 0));
    return this.deleteEach(revisions);
  }

  /** Removes expired delete records after raising `retained` over them: `since` below it is a 410. */
  async expire(revisions: number[]): Promise<number> {
    if (revisions.length === 0) return 0;
    const top = revisions.reduce((a, b) => Math.max(a, b), 0);
    await this.raiseMeta(META_RETAINED, top);
    await this.raiseMeta(META_FLOOR, top);
    return this.deleteEach(revisions);
  }

  private async deleteEach(revisions: number[]): Promise<number> {
    let n = 0;
    for (let i = 0; i < revisions.length; i += 8) {
      const rs = await Promise.all(revisions.slice(i, i + 8).map((r) => this.records.deleteOne({ _id: revisionId(r) } as Filter<LogRecord<D>>)));
      n += rs.reduce((s, x) => s + x.deletedCount, 0);
    }
    return n;
  }
}

/**
 * Follows the log: hands out records in revision order, only ever over a contiguous prefix. Fetches the
 * next revisions by `_id` (the only lookup FerretDB v1 pushes down), several at a time while there is a
 * backlog; skips gaps at or below the compaction floor; fills a hole (a missing revision with a later one
 * present) once it is older than holeFillMs. Later revisions are looked for beyond a persisting gap, so a
 * hole left by a writer that died is found even when nothing is written after it.
 */
/** The most holes a reader fills in one go (a longer run takes a few rounds). */
const MAX_FILL_RUN = 64;

export class LogTail<D extends Document = Document> {
  /** Every revision up to here has been handed out (or was a fill or compacted). */
  revision: number;
  private readonly stash = new Map<number, LogRecord<D>>();
  private batch = 2;
  /** Revisions seen missing while a later one existed, and since when. */
  private readonly missingSince = new Map<number, number>();
  private floor = 0;
  private floorReadAt = 0;
  private probedAt = 0;
  private probeEveryMs: number;

  /** When a read of the revisions above everything known to exist last found none (the head). */
  private headEmptyAt = -Infinity;

  /**
   * `headEveryMs`: for this long after a read found nothing above everything known to exist (other processes'
   * writes), those revisions are not read again. A tail woken by each of its own writes (taken from memory,
   * see ChangeLog.committedRecord) would otherwise read the revisions after each of them too; 0 reads them on
   * every poll. A read that finds some (a backlog) goes on at once.
   */
  constructor(
    private readonly log: ChangeLog<D>,
    from: number,
    private readonly headEveryMs = 0,
  ) {
    this.revision = from;
    this.probeEveryMs = Math.max(100, log.holeFillMs / 2);
  }

  /** The next poll reads the revisions above everything known to exist (a caller waits for another process's change). */
  readHeadNow(): void {
    this.headEmptyAt = -Infinity;
  }

  /** The records that became contiguous since the last call, in order (fills and compacted gaps advance silently). */
  async poll(max = 5000): Promise<LogRecord<D>[]> {
    const out: LogRecord<D>[] = [];
    try {
      await this.pollInto(out, max);
    } catch (e) {
      // The position has moved past what `out` holds: hand those out (the error comes back on the next poll)
      // rather than lose them — a database that fails mid-poll must not make a reader skip changes.
      if (out.length === 0) throw e;
    }
    return out;
  }

  private async pollInto(out: LogRecord<D>[], max: number): Promise<void> {
    while (out.length < max) {
      const want: number[] = [];
      for (let r = this.revision + 1; want.length < this.batch; r++) if (!this.stash.has(r)) want.push(r);
      const found = await this.fetch(want, true);
      const before = this.revision;
      for (let r = this.revision + 1; this.stash.has(r); r++) {
        const rec = this.stash.get(r)!;
        this.stash.delete(r);
        this.revision = r;
        if (rec.op !== 'fill') out.push(rec);
      }
      const advanced = this.revision > before;
      if (advanced) {
        for (const x of this.missingSince.keys()) if (x <= this.revision) this.missingSince.delete(x);
        this.log.passed(this.revision);
        // A backlog (every revision asked for existed): ask for more at once. At the head, few: the rest
        // would be reads of revisions nobody has written yet, on every poll.
        this.batch = found === want.length ? Math.min(256, this.batch * 2) : 2;
        continue;
      }
      if (!(await this.overGap())) {
        this.batch = 2;
        break;
      }
    }
  }

  /**
   * Reads `revisions` into the stash (this process's own commits without a read); answers how many exist.
   * `atHead`: revisions above everything known to exist are skipped while the head was just found empty.
   */
  private async fetch(revisions: number[], atHead = false): Promise<number> {
    const local = revisions.map((r) => this.log.committedRecord(r));
    let known = Math.max(this.revision, this.log.knownToExist);
    for (const rec of local) if (rec && rec.r > known) known = rec.r;
    for (const r of this.stash.keys()) if (r > known) known = r;
    // Revisions below one known to exist are always read (a change before it may be another process's).
    const beyond = (r: number, i: number) => !local[i] && r > known;
    const now = Date.now();
    const skip = atHead && now - this.headEmptyAt < this.headEveryMs;
    const found = await Promise.all(revisions.map((r, i) => local[i] ?? (skip && beyond(r, i) ? null : this.log.read(r))));
    if (atHead && !skip && revisions.some(beyond)) this.headEmptyAt = revisions.some((r, i) => beyond(r, i) && found[i]) ? -Infinity : now;
    let n = 0;
    for (const rec of found) {
      if (!rec) continue;
      n++;
      this.stash.set(rec.r, rec);
      this.log.observe(rec.r);
    }
    return n;
  }

  /**
   * The next revision is missing. True when the tail may go on: the gap is compaction (at or below the
   * floor), or a hole missing for holeFillMs, now filled (with the holes after it that have been missing
   * as long). A gap with nothing after it is no hole.
   */
  private async overGap(): Promise<boolean> {
    const r = this.revision + 1;
    const now = Date.now();
    if (this.stash.size === 0 && now - this.probedAt >= this.probeEveryMs) {
      this.probedAt = now;
      // Near offsets densely (writers allocate upwards from the head), far ones exponentially.
      const offsets = [2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 20, 24, 32, 48, 64, 128, 256, 512, 1024, 4096];
      await this.fetch(offsets.map((o) => this.revision + o));
      // An idle log answers nothing: look less often, up to every 10 s (a dead writer's hole then waits at most that).
      this.probeEveryMs = this.stash.size > 0 ? Math.max(100, this.log.holeFillMs / 2) : Math.min(10_000, this.probeEveryMs * 2);
    }
    if (this.stash.size === 0) {
      this.missingSince.clear();
      return false;
    }
    if (now - this.floorReadAt > 500) {
      this.floor = await this.log.metaValue('floor');
      this.floorReadAt = now;
    }
    if (r <= this.floor) {
      this.revision = r;
      return true;
    }
    const since = this.missingSince.get(r) ?? now;
    this.missingSince.set(r, since);
    if (now - since < this.log.holeFillMs) return false;
    // r has been missing holeFillMs while a later revision exists: a hole. Writers that lost the database
    // mid-append leave runs of them; one at a time, each would wait holeFillMs. So the run behind r is read
    // once now: its missing revisions age from now, and those missing holeFillMs already are filled with r.
    let next = Infinity;
    for (const k of this.stash.keys()) if (k > r && k < next) next = k;
    const span: number[] = [];
    for (let x = r + 1; x < next && span.length < MAX_FILL_RUN; x++) span.push(x);
    const present = await Promise.all(span.map((x) => this.log.read(x)));
    const due = [r];
    let run = true;
    for (const [i, x] of span.entries()) {
      const rec = present[i];
      if (rec) {
        this.stash.set(x, rec);
        run = false;
        continue;
      }
      const first = this.missingSince.get(x) ?? now;
      this.missingSince.set(x, first);
      if (now - first < this.log.holeFillMs) run = false;
      if (run) due.push(x);
    }
    // Atomic inserts: where the slow writer's record landed meanwhile, the fill is refused and the record read.
    await Promise.all(due.map((x) => this.log.fill(x)));
    for (const x of due) this.missingSince.delete(x);
    return true;
  }
}
