/**
 * Name reservations: names are unique per origin (model.ts nameKey), and a write that would give an entry a
 * name another entry holds must be refused before it reaches the change log, because everything in the log
 * is seen by every consumer at once (issue 24, item 7: ten racing creates of one name put nine entries on
 * the feed and in queries for a moment, then nine deletes of ids no client was ever given).
 *
 * A name is reserved by a unique insert `{_id: name key, id, at}` (the one atomic primitive FerretDB v1
 * has) before the write is appended, and released once no state of the entry uses it. Of any number of
 * writers racing for a free name, exactly one inserts the reservation; the others find it held and answer
 * 409, before they append anything.
 *
 * A reservation is its writer's alone: a write finding the name reserved, even for the same entry (another
 * write of it, or its previous life), is refused like any other, and gives back only a reservation it made.
 * Shared reservations let one entry hold its name with none: a re-create racing with the delete of its id took
 * the reservation the delete then released; of two creates of one id, the refused one gave back the one its
 * rival held. Either way another entry could take the name and reach the log. A reservation records the
 * revision of the entry's state its write follows (`rev`: for a create, the tombstone of the entry's previous
 * life, or 0), and the write that ends a name's use releases only reservations made up to the state it ends.
 *
 * A reservation outlives its holder's use of the name only when a process died between its write and the
 * release, or the release failed (or the write failed in a way that leaves it unknown whether the name is
 * used). It is then taken over once its entry was deleted after the state it was made for, or else once it is
 * older than any write could still be in flight (STALE_AFTER_MS: a plan is never
 * appended more than 8 s after it was made) and the holder is seen not to hold the name; of several takers,
 * the one that wins a claim on that very reservation clears it.
 *
 * A name given up by a change at revision r may be taken by a replica whose feed has not read r yet, and
 * revisions commit out of order across entries: its create could be appended below r, and in revision order
 * (the order every consumer applies) both entries would hold the name for a while. So the change that gives a
 * name up records its revision (`catalog_name_releases`, before the reservation goes), and whoever reserves the
 * name next tells its change log that revision exists: its change is appended after it (found by
 * `npm run robustness`).
 *
 * The collection's unique index on the name key stays behind this as the last word (writes.ts undoes a
 * write it refuses); with reservations it refuses nothing unless entries written before reservations
 * existed are involved, which the caller checks against the view.
 */
import { randomBytes } from 'node:crypto';
import type { Collection, Db } from 'mongodb';
import { isDuplicateKey, upsertShared, type Claims } from '../db/atomic';

export const NAME_RESERVATIONS = 'catalog_name_reservations';
/** Per name key, the latest revision of a change that gave the name up. */
export const NAME_RELEASES = 'catalog_name_releases';
/** Older than this, a reservation whose holder does not use the name is taken over. */
export const STALE_AFTER_MS = 30_000;

interface Reservation {
  _id: string;
  /** The entry holding the name. */
  id: string;
  at: Date;
  /** The revision of the entry's state the reserving write follows (absent on reservations made before it existed: 0). */
  rev?: number;
  /** The reserving call (tells its own insert from another's after an ambiguous failure). */
  w?: string;
}

interface Release {
  _id: string;
  r: number;
}

/** The reservations of entry `id` made by writes that follow its state `upTo` or an earlier one. */
const upTo = (key: string, id: string, rev: number) => ({ _id: key, id, $or: [{ rev: { $lte: rev } }, { rev: { $exists: false } }] });

/** Whether entry `id` uses name key `key` in a state any reader can see (the collection or this replica's feed). */
export type HoldsName = (id: string, key: string) => Promise<boolean>;
/** The revision of the change that deleted entry `id` after revision `rev` (this replica's feed, or the tombstones); undefined when it was not. */
export type DeletedAfter = (id: string, rev: number) => Promise<number | undefined>;

export class NameReservations {
  readonly collection: Collection<Reservation>;
  private readonly releases: Collection<Release>;

  /** `observe(r)`: revision r exists; the changes this process appends from now on come after it. */
  constructor(
    db: Db,
    private readonly claims: Claims,
    private readonly holds: HoldsName,
    private readonly observe: (r: number) => void,
    private readonly deletedAfter: DeletedAfter = async () => undefined,
    private readonly staleAfterMs = STALE_AFTER_MS,
  ) {
    this.collection = db.collection<Reservation>(NAME_RESERVATIONS);
    this.releases = db.collection<Release>(NAME_RELEASES);
  }

  /** After reserving: this process's next changes come after the last change that gave these names up. */
  private async followReleases(keys: string[]): Promise<void> {
    const found = await this.releases.find(keys.length === 1 ? { _id: keys[0]! } : { _id: { $in: keys } }).toArray();
    for (const f of found) this.observe(f.r);
  }

  /**
   * Reserves `key` for entry `id`, for a write that follows the entry's state at revision `rev`: true when this
   * call reserved it, false when it is held (by another entry, or by another write of this one).
   */
  async reserve(key: string, id: string, rev: number, w = randomBytes(8).toString('hex')): Promise<boolean> {
    if (!(await this.insert(key, id, rev, w))) return false;
    await this.followReleases([key]);
    return true;
  }

  private async insert(key: string, id: string, rev: number, w: string): Promise<boolean> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await this.collection.insertOne({ _id: key, id, at: new Date(), rev, w });
        return true;
      } catch (e) {
        if (!isDuplicateKey(e)) throw e;
      }
      const held = await this.collection.findOne({ _id: key });
      if (!held) continue; // released in between
      if (held.w === w) return true; // this call's own insert (its answer was lost)
      if (!(await this.abandoned(held, key))) return false;
      if (!(await this.claims.claimOnce(`name-reservation:${key}:${held.id}:${held.at.getTime()}`))) return false;
      // That very reservation (its holder may have made a new one since, after a release).
      await this.collection.deleteOne({ _id: key, id: held.id, at: held.at });
    }
    return false;
  }

  /**
   * Whether `held` may be taken over: made for a life of its entry that a later delete has ended (the delete's
   * release failed: the database went away just then), or older than any write could still be in flight and its
   * holder seen not to use the name. No write can land on a reservation of an ended life: a write following the
   * entry's state `rev` fails its compare-and-set once the entry was deleted after `rev`, and a new life's create
   * reserves following the tombstone. The delete is settled by the tombstone (written once the delete is in the
   * log), not by this replica's feed, which may not have read it yet: the taker's change is then appended after
   * the delete, as after any release. Without it, a name stayed refused for 30 s after a database restart, and a
   * peer's follower refused the mirrored entry that took the name next (found by `npm run robustness`, on
   * PostgreSQL); and a replica whose feed lagged the delete refused the name too (found by CI under load).
   */
  private async abandoned(held: Reservation, key: string): Promise<boolean> {
    const deleted = await this.deletedAfter(held.id, held.rev ?? 0);
    if (deleted !== undefined) {
      this.observe(deleted);
      return true;
    }
    return Date.now() - held.at.getTime() >= this.staleAfterMs && !(await this.holds(held.id, key));
  }

  /** Reserves the name keys of new entries at once (onboarding): the ids whose name another entry holds. */
  async reserveMany(pairs: Array<{ key: string; id: string; rev: number }>): Promise<Set<string>> {
    const refused = new Set<string>();
    if (pairs.length === 0) return refused;
    const at = new Date();
    const w = randomBytes(8).toString('hex');
    try {
      await this.collection.insertMany(
        pairs.map((p) => ({ _id: p.key, id: p.id, at, rev: p.rev, w })),
        { ordered: false },
      );
    } catch {
      // Taken ones (or an unknown outcome): each is settled one by one below (those this call inserted are its own).
      for (const p of pairs) if (!(await this.insert(p.key, p.id, p.rev, w))) refused.add(p.id);
    }
    await this.followReleases(pairs.filter((p) => !refused.has(p.id)).map((p) => p.key));
    return refused;
  }

  /**
   * Gives up entry `id`'s reservation of `key` made for its state `rev` or an earlier one: the caller wrote a
   * state after `rev` without that name, at revision `at` (a later life's reservation of the same name stays).
   */
  async release(key: string, id: string, rev: number, at: number): Promise<void> {
    await upsertShared(this.releases, { _id: key }, { $max: { r: at } });
    await this.collection.deleteOne(upTo(key, id, rev));
  }

  /** Gives back a reservation no change ever used (its write was refused, or never appended). */
  private async giveBack(key: string, id: string, rev: number): Promise<void> {
    await this.collection.deleteOne(upTo(key, id, rev));
  }

  /** Gives up entry `id`'s reservation of `key` (made for its state `rev` or before) unless the entry uses that name (a write that was refused). */
  async releaseUnused(key: string, id: string, rev: number): Promise<void> {
    if (!(await this.holds(id, key))) await this.giveBack(key, id, rev);
  }
}
