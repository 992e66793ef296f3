/**
 * The one door for every write of a registry entry: client writes, onboarding, probe results and storage
 * refreshes all come through here. Each write is first appended to the change log (src/db/changelog.ts),
 * which gives it its catalog revision and settles concurrent writers of the same entry (the change that
 * follows revision `prev` of an entry can be written once); then the entry is written ("materialized")
 * into `container_registries`, which the database-served reads, the sweeps and the writers themselves read.
 * See docs/change-feed.md.
 *
 * - A writer reads the entry (its `revision` is `prev`), plans the next state, appends it, materializes it.
 * - A writer that loses the race re-reads and re-plans. When the entry stays at `prev` although a change
 *   after it exists (its writer died between the two steps), the writer materializes that change itself
 *   (repair) and goes on.
 * - Deletes leave a tombstone `{_id, revision}` in `container_registry_tombstones`, so that a later create
 *   of the same id follows the delete (and concurrent creates of one id cannot both win).
 * - A name is reserved before the write that gives it to an entry is appended (names.ts), so a write
 *   refused for its name never reaches the log and no reader ever sees it. Entries named before
 *   reservations existed are found in the view (`nameOwner`); the collection's unique index stays the last
 *   word, and a write it refuses is undone by a compensating change and answered with 409.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Collection, Db, Filter } from 'mongodb';
import { AppendTimeout, ChangeConflict, ChangeLog, RecordTooLarge, revisionId, type LogRecord } from '../db/changelog';
import { isDuplicateKey, refusals, upsertShared, writeErrorsOf, type Claims } from '../db/atomic';
import { ensureIndexes } from '../db/indexes';
import { ConflictError, PayloadTooLargeError, ServiceUnavailableError } from '../errors';
import { COLLECTION, NAME_KEY, nameKey, type StoredRegistry } from './model';
import { NameReservations } from './names';

export const TOMBSTONES = 'container_registry_tombstones';
export const CHANGES = 'catalog_changes';

export interface Tombstone {
  _id: string;
  revision: number;
  at: Date;
}

/** What a planner asks for: nothing, the entry's whole next state, or its deletion. */
export type EntryPlan<R> = { kind: 'none'; result: R } | { kind: 'replace'; next: StoredRegistry; result: R } | { kind: 'delete'; result: R };

/** The entry as the caller read it, and when: the first attempt starts from it instead of a read. */
export interface KnownEntry {
  doc: StoredRegistry | null;
  readAt: number;
}

/**
 * Called with every revision this process wrote, once it is materialized, and with the revision of every
 * entry it answered from the collection; `acknowledged`: a client was (or is about to be) told of it, so this
 * replica's later reads must show it (read-your-writes: what a replica answered, its later reads show). False
 * for the writes of a sweep while it runs (see unacknowledgedWrites).
 */
export type WrittenListener = (revision: number, acknowledged: boolean) => void;

const unacknowledged = new AsyncLocalStorage<{ top: number; acknowledge?: (revision: number) => void }>();

/**
 * Runs `fn`, whose entry writes no client is told about one by one (a scheduled sweep's probe results): reads
 * do not wait for each of them (under a sweep they would wait for the feed after every probe result); when
 * `fn` ends, the highest revision it wrote counts as acknowledged (its caller learns the outcome then).
 */
export async function unacknowledgedWrites<T>(fn: () => Promise<T>): Promise<T> {
  const scope: { top: number; acknowledge?: (revision: number) => void } = { top: 0 };
  try {
    return await unacknowledged.run(scope, fn);
  } finally {
    if (scope.top > 0) scope.acknowledge?.(scope.top);
  }
}

/** How long a write may take to get its change into the log (from when the request arrived, for client writes). */
export const WRITE_DEADLINE_MS = 8000;
/** A plan read longer ago than this is not appended (a stalled process re-reads). */
const MAX_PLAN_AGE_MS = 5000;

/** The most entry states one bulk write of the collection carries. */
const REPLACE_BATCH = 128;
/**
 * Where a replace cannot carry its revision condition (FerretDB v1), a write that lands this long after the check
 * of the stored revision (the process was frozen or paused, or the database slow) may have written over a later
 * state that landed in between: its writer then follows the entry's log past its own change (docs/robustness.md,
 * "a writer frozen between its check and its write").
 */
export const LATE_WRITE_MS = 1000;

interface PendingReplace {
  next: StoredRegistry;
  resolve: (written: boolean) => void;
  reject: (e: unknown) => void;
  /** Written without a revision condition LATE_WRITE_MS or more after its check (see materializeReplace). */
  late?: boolean;
}

/** A name a write of an entry reserved, and the revision of the state that write followed. */
interface Taken {
  key: string | undefined;
  rev: number;
}

export function revisionOf(doc: { revision?: unknown } | null | undefined): number {
  return typeof doc?.revision === 'number' ? doc.revision : 0;
}

export class EntryWriter {
  readonly collection: Collection<StoredRegistry>;
  readonly tombstones: Collection<Tombstone>;
  readonly log: ChangeLog<StoredRegistry>;
  readonly names: NameReservations;
  private readonly listeners: WrittenListener[] = [];
  /** Told how many entry changes each grouped write carried: `log` per append, `collection` per bulk write (metrics). */
  onBatch?: (step: 'log' | 'collection', size: number) => void;
  /**
   * Optional fast lookup of which entry holds a name key (model.ts nameKey; the in-memory view, once it
   * includes this replica's acknowledged writes), used before appending; undefined when it cannot tell.
   */
  nameOwner?: (key: string) => Promise<string | undefined>;
  /**
   * Optional: the latest change of an entry this replica's feed has read (the in-memory view). Repairs
   * use it instead of searching the log, which FerretDB v1 can only do by scanning it.
   */
  latestKnown?: (id: string) => { revision: number; doc?: StoredRegistry } | undefined;

  constructor(
    db: Db,
    private readonly claims: Claims,
    opts: { holeFillMs?: number; compactAfterMs?: number } = {},
  ) {
    this.collection = db.collection<StoredRegistry>(COLLECTION);
    this.tombstones = db.collection<Tombstone>(TOMBSTONES);
    this.log = new ChangeLog<StoredRegistry>(db, { name: CHANGES, ...opts });
    this.log.onBatch = (size) => this.onBatch?.('log', size);
    this.names = new NameReservations(db, claims, (id, key) => this.holdsName(id, key), (r) => this.log.observe(r), (id, rev) => this.deletedAfter(id, rev));
  }

  async ensureIndexes(): Promise<void> {
    await this.log.ensureIndexes();
    await ensureIndexes(this.tombstones, [{ key: { at: 1 }, name: 'at' }]);
  }

  onWritten(listener: WrittenListener): void {
    this.listeners.push(listener);
  }

  /** Revisions this process wrote to both the log and the collection (when), until the feed checks them. */
  private readonly complete = new Map<number, number>();

  private written(...rs: number[]): void {
    const now = Date.now();
    if (this.complete.size > 100_000) for (const [r, at] of this.complete) if (now - at > 300_000) this.complete.delete(r);
    for (const r of rs) this.complete.set(r, now);
    this.answered(Math.max(0, ...rs));
  }

  /**
   * This process answered a client with an entry at revision `r` (a read, an update that changed nothing, one
   * written by another replica): its later reads must not show an older state of it (the view may not have
   * read `r` yet when the collection already holds it).
   */
  answered(r: number): void {
    if (r <= 0) return;
    // Inside a sweep (unacknowledgedWrites) nobody is told yet: the sweep's highest revision counts when it ends.
    const scope = unacknowledged.getStore();
    if (scope) {
      scope.top = Math.max(scope.top, r);
      scope.acknowledge = (top) => this.listeners.forEach((l) => l(top, true));
    }
    for (const l of this.listeners) l(r, !scope);
  }

  /** Whether this process wrote revision `r` to the collection itself (and the feed has not checked it yet). */
  isComplete(r: number): boolean {
    return this.complete.has(r);
  }

  /** True (once) when this process wrote revision `r` to the collection itself: nothing to check. */
  takeComplete(r: number): boolean {
    return this.complete.delete(r);
  }

  /** The revision a create of `id` follows: its tombstone's, or 0 for an id never used. */
  private async createPrev(id: string): Promise<number> {
    const t = await this.tombstones.findOne({ _id: id });
    return t?.revision ?? 0;
  }

  /**
   * Creates entry `doc` (its `_id` must be new). 409 when the id or name is taken.
   */
  async create(doc: StoredRegistry): Promise<StoredRegistry> {
    stampNameKey(doc);
    // The id and the tombstone the create follows, at once; then the name, reserved for this life of the entry.
    const [existing, prev] = await Promise.all([this.collection.findOne({ _id: doc._id } as Filter<StoredRegistry>, { projection: { _id: 1 } }), this.createPrev(doc._id)]);
    if (existing) throw idTaken(doc._id);
    await this.takeName(doc, prev);
    const refuse = async (e: unknown): Promise<never> => {
      await this.names.releaseUnused(nameKey(doc), doc._id, prev).catch(() => undefined);
      throw e;
    };
    let r: number;
    try {
      r = await this.log.append({ key: doc._id, prev, op: 'upsert', doc });
    } catch (e) {
      const failure = e instanceof Error ? appendFailure(e, doc._id) : e;
      // Refused for sure: the name is given back. An append that timed out may still land (or become a
      // hole): its name stays reserved until stale.
      if (e instanceof ChangeConflict || e instanceof RecordTooLarge) return refuse(failure);
      throw failure;
    }
    const stored = { ...doc, revision: r } as StoredRegistry;
    await this.materializeNew([stored]);
    this.written(r);
    return stored;
  }

  /**
   * Creates new entries in one append and one insertMany (onboarding). Answers, per document, the stored
   * entry or the error (409 for a taken id or name, 413 for an entry too large to store, the database's
   * refusal of that entry...): an entry that fails never fails the others, and one that is answered with an
   * error is neither in the collection nor (but for a compensating delete) in the log.
   */
  async createMany(docs: StoredRegistry[]): Promise<Array<StoredRegistry | Error>> {
    const out: Array<StoredRegistry | Error> = [];
    const tombstones = new Map((await this.tombstones.find({ _id: { $in: docs.map((d) => d._id) } }).toArray()).map((t) => [t._id, t.revision]));
    const candidates: number[] = [];
    for (const doc of docs) stampNameKey(doc);
    const refused = await this.names.reserveMany(docs.map((d) => ({ key: nameKey(d), id: d._id, rev: tombstones.get(d._id) ?? 0 })));
    for (const [i, doc] of docs.entries()) {
      if (refused.has(doc._id)) out[i] = nameTaken(doc);
      else if (await this.unreservedOwner(doc)) {
        out[i] = nameTaken(doc);
        await this.names.releaseUnused(nameKey(doc), doc._id, tombstones.get(doc._id) ?? 0).catch(() => undefined);
      } else candidates.push(i);
    }
    const revs = await this.log.appendMany(candidates.map((i) => ({ key: docs[i]!._id, prev: tombstones.get(docs[i]!._id) ?? 0, op: 'upsert' as const, doc: docs[i]! })));
    const stored: Array<{ i: number; doc: StoredRegistry }> = [];
    for (const [k, i] of candidates.entries()) {
      const r = revs[k]!;
      if (typeof r === 'number') stored.push({ i, doc: { ...docs[i]!, revision: r } as StoredRegistry });
      else {
        out[i] = appendFailure(r, docs[i]!._id);
        if (r instanceof ChangeConflict || r instanceof RecordTooLarge) await this.names.releaseUnused(nameKey(docs[i]!), docs[i]!._id, tombstones.get(docs[i]!._id) ?? 0).catch(() => undefined);
      }
    }
    const failed = await this.materializeNew(stored.map((s) => s.doc), false);
    for (const [k, s] of stored.entries()) out[s.i] = failed.get(k) ?? s.doc;
    this.written(...stored.filter((_, k) => !failed.has(k)).map((s) => s.doc.revision as number));
    return out;
  }

  /**
   * Inserts new entries as appended. A document the database refuses (a unique index: its name was taken
   * by a concurrent writer since the check; or anything else it will not store) gets a compensating delete
   * in the log, so the feed ends where the collection is; answers the index of each refused document with
   * its error (409 for a taken name).
   */
  private async materializeNew(docs: StoredRegistry[], throwOne = true): Promise<Map<number, Error>> {
    const refused = new Map<number, Error>();
    if (docs.length === 0) return refused;
    let why: Map<number, 'duplicate' | Error> | undefined;
    try {
      if (docs.length === 1) await this.collection.insertOne(docs[0]!);
      else await this.collection.insertMany(docs, { ordered: false });
      return refused;
    } catch (e) {
      // An unknown outcome (the database went away...) is the caller's error; the entries are in the log,
      // so the feed's check writes them to the collection once the database answers.
      why = refusals(e, docs.length);
      if (!why) throw e;
    }
    const present = new Map(
      (await this.collection.find({ _id: { $in: docs.map((d) => d._id) } } as Filter<StoredRegistry>, { projection: { _id: 1, revision: 1 } }).toArray()).map((d) => [d._id, revisionOf(d)]),
    );
    for (const [i, doc] of docs.entries()) {
      // The entry at this revision or a later one: the create landed (another process may have written it from
      // the log, and a later write followed it, while this one was held up).
      if ((present.get(doc._id) ?? -1) >= (doc.revision as number)) continue;
      await this.undoCreate(doc).catch(() => undefined);
      const reason = why.get(i);
      refused.set(i, reason instanceof Error ? reason : nameTaken(doc));
    }
    if (throwOne && refused.size > 0) throw refused.values().next().value;
    return refused;
  }

  private async undoCreate(doc: StoredRegistry): Promise<void> {
    const r = await this.log.append({ key: doc._id, prev: doc.revision as number, op: 'delete' });
    await this.recordTombstone(doc._id, r);
    await this.names.release(nameKey(doc), doc._id, doc.revision as number, r);
  }

  /**
   * Reserves the name `doc` asks for (names.ts), for a write that follows the entry's state at `rev`; 409 when
   * it is held (then nothing is given back: the reservation is another write's, perhaps of this same entry).
   */
  private async takeName(doc: StoredRegistry, rev: number): Promise<void> {
    if (!(await this.names.reserve(nameKey(doc), doc._id, rev))) throw nameTaken(doc);
    if (await this.unreservedOwner(doc)) {
      await this.names.releaseUnused(nameKey(doc), doc._id, rev).catch(() => undefined);
      throw nameTaken(doc);
    }
  }

  /**
   * True when another entry uses `doc`'s name without a reservation (named before reservations existed, or
   * imported from an older export): the view knows it, and the collection confirms it (the view may trail
   * another replica's rename; such an entry's state is in the collection).
   */
  private async unreservedOwner(doc: StoredRegistry): Promise<boolean> {
    const owner = this.nameOwner ? await this.nameOwner(nameKey(doc)) : undefined;
    return owner !== undefined && owner !== doc._id && (await this.storedWithName(owner, nameKey(doc)));
  }

  /**
   * Whether entry `id` may use name key `key` in a state a reader can see: this replica's feed (which also
   * holds changes not yet in the collection) or the collection. Errs towards "uses it": a reservation kept
   * too long only delays the name's next owner (names.ts).
   */
  private async holdsName(id: string, key: string): Promise<boolean> {
    const known = this.latestKnown?.(id);
    return (known?.doc !== undefined && nameKey(known.doc) === key) || this.storedWithName(id, key);
  }

  /**
   * The revision of the change that deleted entry `id` after revision `rev`: this replica's feed when it has read
   * the delete, else the tombstone (the feed may lag the delete; it never runs ahead of the tombstone's word for
   * long, and the entry must be gone from the collection too).
   */
  private async deletedAfter(id: string, rev: number): Promise<number | undefined> {
    const known = this.latestKnown?.(id);
    if (known && known.revision > rev && known.doc === undefined) return known.revision;
    const t = await this.tombstones.findOne({ _id: id });
    if (!t || t.revision <= rev) return undefined;
    const alive = await this.collection.findOne({ _id: id } as Filter<StoredRegistry>, { projection: { _id: 1 } });
    return alive === null ? t.revision : undefined;
  }

  private async storedWithName(id: string, key: string): Promise<boolean> {
    const cur = await this.collection.findOne({ _id: id } as Filter<StoredRegistry>, { projection: { container_registry_name: 1, container_registry_origin: 1 } });
    return cur !== null && nameKey(cur) === key;
  }

  /**
   * Atomic read-plan-write of entry `id`. `plan` sees the current entry (null when missing) and answers
   * nothing, its next state, or its deletion; it is called again when another writer got in first, until
   * `giveUpAt` (default: WRITE_DEADLINE_MS from now), then a 503.
   */
  async modify<R>(id: string, plan: (doc: StoredRegistry | null) => EntryPlan<R> | Promise<EntryPlan<R>>, known?: KnownEntry, giveUpAt = Date.now() + WRITE_DEADLINE_MS): Promise<R> {
    // A name reserved by an attempt whose change was never appended is given back (names.ts).
    const taken: Taken = { key: undefined, rev: 0 };
    try {
      return await this.modifyOnce(id, plan, known, taken, giveUpAt);
    } finally {
      if (taken.key !== undefined) await this.names.releaseUnused(taken.key, id, taken.rev).catch(() => undefined);
    }
  }

  /**
   * The entry as a reader must see it: the collection's document, unless this replica's feed has read a
   * later change of it that the collection does not hold (its writer died between the log and the
   * collection, or has not written it yet): the collection is brought to that change first (never over a
   * later one), then read again. Without it, an entry deleted (or changed) in the log by a writer that died
   * would be answered in its older state by reads and by writes that append nothing (a 412, a 404, an
   * update that changes nothing) until the feed's check repairs it, after the feed's consumers, and other
   * writes, saw the change.
   */
  async read(id: string, maxTimeMS?: number): Promise<StoredRegistry | null> {
    const find = () => this.collection.findOne({ _id: id } as Filter<StoredRegistry>, maxTimeMS === undefined ? {} : { maxTimeMS });
    let doc = await find();
    if (this.behindFeed(id, doc)) {
      const known = this.latestKnown!(id)!;
      if (await this.materializeState(id, known.revision, known.doc)) doc = await find();
    }
    this.answered(revisionOf(doc));
    return doc;
  }

  /** Whether this replica's feed has read a change of entry `id` later than `doc` (null: missing). */
  private behindFeed(id: string, doc: StoredRegistry | null): boolean {
    const known = this.latestKnown?.(id);
    if (!known || known.revision <= revisionOf(doc)) return false;
    // Missing and deleted in the feed: the same state.
    return doc !== null || known.doc !== undefined;
  }

  /** Brings the collection to the state this replica's feed holds of entry `id`, if it is behind it. */
  private async catchUp(id: string): Promise<void> {
    const known = this.latestKnown?.(id);
    if (known) await this.materializeState(id, known.revision, known.doc).catch(() => false);
  }

  /** `plan` on `doc`; a refusal (404, 412...) decided on the feed's state is answered once the collection holds that state. */
  private async planOn<R>(id: string, doc: StoredRegistry | null, plan: (doc: StoredRegistry | null) => EntryPlan<R> | Promise<EntryPlan<R>>, fromFeed: boolean): Promise<EntryPlan<R>> {
    try {
      return await plan(doc);
    } catch (e) {
      if (fromFeed) await this.catchUp(id);
      throw e;
    }
  }

  private async modifyOnce<R>(id: string, plan: (doc: StoredRegistry | null) => EntryPlan<R> | Promise<EntryPlan<R>>, known: KnownEntry | undefined, taken: Taken, giveUpAt: number): Promise<R> {
    let stuck: { prev: number; since: number } | undefined;
    // The caller's read of the entry is used when it is recent and the feed knows nothing later.
    let next: (KnownEntry & { fromFeed?: boolean }) | undefined = known && !this.behindFeed(id, known.doc) ? known : undefined;
    for (let attempt = 0; Date.now() < giveUpAt; attempt++) {
      const reuse = next !== undefined && Date.now() - next.readAt < MAX_PLAN_AGE_MS / 2;
      const readAt = reuse ? next!.readAt : Date.now();
      const doc = reuse ? next!.doc : await this.read(id);
      // Planned on the feed's state (after losing a race), which the collection may not hold yet.
      const fromFeed = reuse && next!.fromFeed === true;
      next = undefined;
      const p = await this.planOn(id, doc, plan, fromFeed);
      if (p.kind === 'none' || !doc) {
        if (fromFeed) await this.catchUp(id);
        return p.result;
      }
      const prev = revisionOf(doc);
      if (p.kind === 'replace') stampNameKey(p.next);
      const renamed = p.kind === 'replace' && nameKey(p.next) !== nameKey(doc);
      if (renamed && taken.key !== nameKey(p.next)) {
        if (taken.key !== undefined) await this.names.releaseUnused(taken.key, id, taken.rev);
        taken.key = undefined;
        await this.takeName(p.next, prev);
        taken.key = nameKey(p.next);
        taken.rev = prev;
      }
      if (Date.now() - readAt > MAX_PLAN_AGE_MS) continue;
      let r: number;
      try {
        r = await this.log.append({ key: id, prev, op: p.kind === 'delete' ? 'delete' : 'upsert', doc: p.kind === 'replace' ? p.next : undefined }, giveUpAt);
      } catch (e) {
        if (e instanceof AppendTimeout) break;
        if (e instanceof RecordTooLarge) throw appendFailure(e, id);
        if (!(e instanceof ChangeConflict)) throw e;
        // Another writer's change follows `prev`. When this replica's feed has read it, plan on it at once
        // (the collection may not show it yet); else re-read after a short pause. If the entry stays at
        // `prev`, that writer died between its two steps: write its change ourselves.
        const latest = this.latestKnown?.(id);
        if (latest && latest.revision > prev) {
          next = { doc: latest.doc ? ({ ...latest.doc } as StoredRegistry) : null, readAt: Date.now(), fromFeed: true };
          continue;
        }
        if (stuck?.prev !== prev) stuck = { prev, since: Date.now() };
        else if (Date.now() - stuck.since > this.log.holeFillMs / 2) await this.repair(id, prev);
        await sleep(Math.min(100, 2 + Math.random() * (attempt + 1) * 4));
        continue;
      }
      // Appended: every reader sees the entry with this state, and so its name.
      if (renamed) taken.key = undefined;
      const rec: LogRecord<StoredRegistry> = { _id: revisionId(r), r, key: id, prev, op: p.kind === 'delete' ? 'delete' : 'upsert', at: new Date(), w: '' };
      if (p.kind === 'replace') rec.doc = { ...p.next, revision: r } as StoredRegistry;
      try {
        if (p.kind === 'delete') await this.materializeDelete(id, r);
      } catch (e) {
        this.repairLater(rec);
        throw e;
      }
      if (p.kind === 'replace') {
        p.next.revision = r;
        let ok: boolean;
        try {
          ok = await this.materializeReplace(p.next);
        } catch (e) {
          // The change is in the log (every consumer sees it); the collection catches up once the database answers.
          this.repairLater(rec);
          throw e;
        }
        if (!ok) {
          // The name was taken by a concurrent writer between the check and now: put the entry back.
          await this.log
            .append({ key: id, prev: r, op: 'upsert', doc })
            .then((back) => this.materializeReplace({ ...doc, revision: back }))
            .catch(() => undefined);
          taken.key = nameKey(p.next);
          throw nameTaken(p.next);
        }
      }
      this.written(r);
      // The entry's previous name is free from now on (renamed, or deleted).
      if (renamed || p.kind === 'delete') await this.names.release(nameKey(doc), id, prev, r).catch(() => undefined);
      return p.result;
    }
    throw entryBusy(id);
  }

  /** Retries bringing the collection to a logged change whose write failed (the database went away in between). */
  private repairLater(rec: LogRecord<StoredRegistry>, attempt = 0): void {
    if (attempt > 20) return;
    setTimeout(() => void this.materializeRecord(rec).catch(() => this.repairLater(rec, attempt + 1)), Math.min(5000, 250 * 2 ** attempt)).unref();
  }

  /** Writes the entry's state after the change that follows `prev` (found in the log) when the entry is still at `prev`. */
  async repair(id: string, prev: number): Promise<boolean> {
    if (this.latestKnown) {
      const known = this.latestKnown(id);
      if (!known || known.revision <= prev) return false;
      return this.materializeState(id, known.revision, known.doc);
    }
    const rec = await this.log.findAfter(id, prev);
    if (!rec) return false;
    return this.materializeRecord(rec);
  }

  /** Brings the entry to a state the feed knows (`doc` undefined: deleted) at `revision`, unless it is there or later. */
  materializeState(id: string, revision: number, doc: StoredRegistry | undefined): Promise<boolean> {
    return this.materializeRecord({ _id: revisionId(revision), r: revision, key: id, prev: 0, op: doc ? 'upsert' : 'delete', doc, at: new Date(), w: '' });
  }

  /** Brings the entry to the state of log record `rec` unless it is already there or later. */
  async materializeRecord(rec: LogRecord<StoredRegistry>): Promise<boolean> {
    const cur = await this.collection.findOne({ _id: rec.key } as Filter<StoredRegistry>, { projection: { revision: 1 } });
    if (rec.op === 'delete') {
      if (!cur || revisionOf(cur) > rec.r) return false;
      await this.materializeDelete(rec.key, rec.r);
      return true;
    }
    if (rec.op !== 'upsert' || !rec.doc || (cur && revisionOf(cur) >= rec.r)) return false;
    if (cur) return this.materializeReplace(rec.doc);
    // Missing: never written (behind), or deleted by a later change this process has not read yet (ahead; a
    // delete writes its tombstone before it removes the entry). Only the first is brought back.
    const tomb = await this.tombstones.findOne({ _id: rec.key });
    if (tomb && tomb.revision > rec.r) return false;
    try {
      await this.collection.insertOne(rec.doc);
      return true;
    } catch (e) {
      if (isDuplicateKey(e)) return false;
      throw e;
    }
  }

  /** Entry states waiting to be written to the collection together (group commit), and the write in progress. */
  private readonly replaces: PendingReplace[] = [];
  private replacing?: Promise<void>;

  /**
   * Replaces the entry by `next` (stamped with its revision) unless a later state is stored; false when a
   * unique index (the name) refuses it. Writes that arrive while one bulk write is in flight go out together
   * in the next one (the log's appends are grouped the same way): a sweep's results cost one round trip per
   * batch, not one each. Two states of one entry never share a batch (the later one waits for the next), so
   * a batch's writes are independent and their order does not matter.
   */
  private async materializeReplace(next: StoredRegistry): Promise<boolean> {
    const pending = { next } as PendingReplace;
    const written = await new Promise<boolean>((resolve, reject) => {
      Object.assign(pending, { resolve, reject });
      this.replaces.push(pending);
      this.replacing ??= this.replaceLoop();
    });
    // Before the entry is released to this process's next write of it (which reads the collection).
    if (written && pending.late) await this.followLog(next._id, next.revision as number).catch(() => undefined);
    return written;
  }

  /**
   * Writes the changes of entry `id` that follow revision `r` in the log, in order: after a late write (a later
   * state may have been written over). On failure, the feed's check repairs the collection.
   */
  private async followLog(id: string, r: number): Promise<void> {
    for (let rec = await this.log.findAfter(id, r); rec; rec = await this.log.findAfter(id, rec.r)) await this.materializeRecord(rec);
  }

  private async replaceLoop(): Promise<void> {
    try {
      while (this.replaces.length > 0) {
        const batch: PendingReplace[] = [];
        const ids = new Set<string>();
        const later: PendingReplace[] = [];
        for (const p of this.replaces.splice(0)) {
          if (batch.length < REPLACE_BATCH && !ids.has(p.next._id)) {
            ids.add(p.next._id);
            batch.push(p);
          } else later.push(p);
        }
        this.replaces.unshift(...later);
        // Not a database answer (a bug): its callers get the error. A lost database is answered per write below.
        await this.replaceBatch(batch).catch((e: unknown) => batch.forEach((p) => p.reject(e)));
      }
    } finally {
      this.replacing = undefined;
      if (this.replaces.length > 0) this.replacing = this.replaceLoop();
    }
  }

  private async replaceBatch(batch: PendingReplace[]): Promise<void> {
    // Where the server checks a filter atomically (MongoDB) each write is also fenced on the revision it
    // follows; FerretDB v1 checks nothing atomically and scans for any filter but _id.
    const fenced = await this.claims.filteredUpdatesAreAtomic();
    let todo = batch;
    const checkedAt = Date.now();
    if (!fenced) {
      // FerretDB v1 cannot check the revision atomically: check it just before (a later state that landed
      // first, e.g. written by a writer that planned on this replica's feed, is never overwritten by an older one).
      const stored = await Promise.all(batch.map((p) => this.storedRevision(p.next._id)));
      todo = batch.filter((p, i) => {
        if ((stored[i] ?? -1) < (p.next.revision as number)) return true;
        p.resolve(true);
        return false;
      });
    }
    if (todo.length === 0) return;
    const filter = (next: StoredRegistry) =>
      (fenced ? { _id: next._id, $or: [{ revision: { $lt: next.revision } }, { revision: { $exists: false } }] } : { _id: next._id }) as Filter<StoredRegistry>;
    this.onBatch?.('collection', todo.length);
    try {
      await this.collection.bulkWrite(todo.map((p) => ({ replaceOne: { filter: filter(p.next), replacement: p.next } })), { ordered: false });
      const late = !fenced && Date.now() - checkedAt >= LATE_WRITE_MS;
      for (const p of todo) {
        p.late = late;
        p.resolve(true);
      }
      return;
    } catch (e) {
      const why = writeErrorsOf(e);
      // What the error leaves unknown (a connection lost mid-batch) is read back: an entry at this revision or
      // later (or gone: a later delete) is written; one a unique index refused is not; any other is its
      // caller's error (the change is in the log: repairLater and the feed's check bring the collection to it).
      const stored = await Promise.all(todo.map((p) => this.storedRevision(p.next._id))).catch(() => undefined);
      for (const [i, p] of todo.entries()) {
        const at = stored?.[i];
        if (at !== undefined && (at === null || at >= (p.next.revision as number))) p.resolve(true);
        else if (stored && why.get(i) === 'duplicate') p.resolve(false);
        else {
          const refused = why.get(i);
          p.reject(refused instanceof Error ? refused : e);
        }
      }
    }
  }

  /** The revision of entry `id` in the collection; null when it is missing. */
  private async storedRevision(id: string): Promise<number | null> {
    const cur = await this.collection.findOne({ _id: id } as Filter<StoredRegistry>, { projection: { revision: 1 } });
    return cur ? revisionOf(cur) : null;
  }

  private async materializeDelete(id: string, r: number): Promise<void> {
    await this.recordTombstone(id, r);
    await this.collection.deleteOne({ _id: id } as Filter<StoredRegistry>);
  }

  /**
   * Records that entry `id` was deleted at revision `r`, unless a later delete is recorded already (a delayed
   * writer of an older delete does not set it back: a create would follow the wrong revision). Several processes
   * write the same tombstone at once: the deleting replica, and any replica whose feed check or repair finds the
   * delete missing from the collection (hence upsertShared).
   */
  private async recordTombstone(id: string, r: number): Promise<void> {
    await upsertShared(this.tombstones, { _id: id, revision: { $lt: r } }, { $set: { revision: r, at: new Date() } });
  }

  /** Drops tombstones older than the retention (their log records expire at the same age). */
  async pruneTombstones(olderThan: Date): Promise<number> {
    return (await this.tombstones.deleteMany({ at: { $lt: olderThan } })).deletedCount;
  }
}

/** Sets the field the per-origin name index is on (model.ts nameKey) from the entry's name and origin. */
function stampNameKey(doc: StoredRegistry): void {
  doc[NAME_KEY] = nameKey(doc);
}

/** The answer to a write of entry `id` that did not get its turn before its deadline. */
export function entryBusy(id: string): ServiceUnavailableError {
  return new ServiceUnavailableError(`Entry ${id} is being written too often to apply this change now; try again.`, 1);
}

function nameTaken(doc: StoredRegistry): ConflictError {
  return new ConflictError(`A registry named "${doc.container_registry_name}" already exists.`, [{ path: '/container_registry_name', message: 'is already used by another entry' }]);
}

/** A change of entry `id` the log did not take, as its caller should see it. */
function appendFailure(e: Error, id: string): Error {
  if (e instanceof ChangeConflict) return idTaken(id);
  if (e instanceof RecordTooLarge) return new PayloadTooLargeError(`The registry entry ${id} is too large to store: ${e.message}.`);
  if (e instanceof AppendTimeout) return new ServiceUnavailableError('The catalog is being written too often to take this entry now; try again.', 1);
  return e;
}

function idTaken(id: string): ConflictError {
  return new ConflictError(`A registry with id ${id} already exists.`, [{ path: '/container_registry_id', message: 'is already used by another entry' }]);
}
