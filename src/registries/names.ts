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
 * A reservation belongs to one life of its entry: it records the revision of the state the reserving write
 * follows (`rev`: for a create, the tombstone of the entry's previous life, or 0). A write of the entry that
 * follows that state or a later one shares it; a create that follows a delete of the entry does not take over
 * the previous life's reservation, which that delete releases (only reservations at or below the revision it
 * ends, so never the next life's): a re-create racing with the delete of its id once took the reservation the
 * delete then released, and held its name with none, so another entry could take the name and reach the log.
 *
 * A reservation outlives its holder's use of the name only when a process died between its write and the
 * release (or the write failed in a way that leaves it unknown whether the name is used). It is then taken
 * over, but only once it is older than any write could still be in flight (STALE_AFTER_MS: a plan is never
 * appended more than 8 s after it was made) and the holder is seen not to hold the name; of several takers,
 * the one that wins a claim on that very reservation clears it.
 *
 * The collection's unique index on the name key stays behind this as the last word (writes.ts undoes a
 * write it refuses); with reservations it refuses nothing unless entries written before reservations
 * existed are involved, which the caller checks against the view.
 */
import type { Collection, Db } from 'mongodb';
import { isDuplicateKey, type Claims } from '../db/atomic';

export const NAME_RESERVATIONS = 'catalog_name_reservations';
/** Older than this, a reservation whose holder does not use the name is taken over. */
export const STALE_AFTER_MS = 30_000;

interface Reservation {
  _id: string;
  /** The entry holding the name. */
  id: string;
  at: Date;
  /** The revision of the entry's state the reserving write follows (absent on reservations made before it existed: 0). */
  rev?: number;
}

/** The reservations of entry `id` made by writes that follow its state `upTo` or an earlier one. */
const upTo = (key: string, id: string, rev: number) => ({ _id: key, id, $or: [{ rev: { $lte: rev } }, { rev: { $exists: false } }] });

/** Whether entry `id` uses name key `key` in a state any reader can see (the collection or this replica's feed). */
export type HoldsName = (id: string, key: string) => Promise<boolean>;

export class NameReservations {
  readonly collection: Collection<Reservation>;

  constructor(
    db: Db,
    private readonly claims: Claims,
    private readonly holds: HoldsName,
    private readonly staleAfterMs = STALE_AFTER_MS,
  ) {
    this.collection = db.collection<Reservation>(NAME_RESERVATIONS);
  }

  /**
   * Reserves `key` for entry `id`, for a write that follows the entry's state at revision `rev`: true when it is
   * now the entry's (or already was, for that state or a later one), false when another entry, or an earlier
   * life of this one, holds it.
   */
  async reserve(key: string, id: string, rev: number): Promise<boolean> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await this.collection.insertOne({ _id: key, id, at: new Date(), rev });
        return true;
      } catch (e) {
        if (!isDuplicateKey(e)) throw e;
      }
      const held = await this.collection.findOne({ _id: key });
      if (!held) continue; // released in between
      if (held.id === id && (held.rev ?? 0) >= rev) return true;
      if (Date.now() - held.at.getTime() < this.staleAfterMs || (await this.holds(held.id, key))) return false;
      if (!(await this.claims.claimOnce(`name-reservation:${key}:${held.id}:${held.at.getTime()}`))) return false;
      await this.collection.deleteOne({ _id: key, id: held.id });
    }
    return false;
  }

  /** Reserves the name keys of new entries at once (onboarding): the ids whose name another entry holds. */
  async reserveMany(pairs: Array<{ key: string; id: string; rev: number }>): Promise<Set<string>> {
    const refused = new Set<string>();
    if (pairs.length === 0) return refused;
    const at = new Date();
    try {
      await this.collection.insertMany(
        pairs.map((p) => ({ _id: p.key, id: p.id, at, rev: p.rev })),
        { ordered: false },
      );
      return refused;
    } catch {
      // Taken ones (or an unknown outcome): each is settled one by one below.
    }
    for (const p of pairs) if (!(await this.reserve(p.key, p.id, p.rev))) refused.add(p.id);
    return refused;
  }

  /**
   * Gives up entry `id`'s reservation of `key` made for its state `rev` or an earlier one: the caller wrote a
   * state after `rev` without that name (a later life's reservation of the same name stays).
   */
  async release(key: string, id: string, rev: number): Promise<void> {
    await this.collection.deleteOne(upTo(key, id, rev));
  }

  /** Gives up entry `id`'s reservation of `key` (made for its state `rev` or before) unless the entry uses that name (a write that was refused). */
  async releaseUnused(key: string, id: string, rev: number): Promise<void> {
    if (!(await this.holds(id, key))) await this.release(key, id, rev);
  }
}
