/**
 * One storage refresh at a time per entry, across replicas (SPEC 19: a refresh writes the entry's inventory,
 * and two at once would each take the other's half-written generation for a dead one). Built on named terms of
 * src/db/lease.ts, so that every step is one write or read by `_id` (no scan of the lease collection, which a
 * generation lease's "latest term" query would be on FerretDB v1, once per registry per storage sweep):
 *
 *   term "<g>.<k>" of key <entry id>, scope "storage-refresh"
 *
 * where g is the generation of the entry's committed inventory (0 before the first) and k counts the turns taken
 * since it; the inventory's state remembers the last k taken (src/inventory/repository.ts `turn`), so a
 * refresh starts there. It inserts turn k; when that insert loses and the turn is live, another refresh holds
 * it: "busy". A turn whose holder released it (its crawl failed: no commit) or died (expired) is passed, and
 * turn k + 1 tried. A commit moves g on, and the count starts again at 1. Turns last the crawl's hard
 * deadline and a minute more.
 */
import { Leases, type Held } from '../db/lease';

/** Turns passed at most in one take (several refreshes that ended between the state's read and now). */
const MAX_STEPS = 64;

export class RefreshTurns {
  constructor(readonly leases: Leases) {}

  /** The entry's turn, or 'busy' while another refresh of it holds one. `generation`, `from`: the inventory state's. */
  async take(id: string, generation: number, from: number): Promise<Held | 'busy'> {
    for (let k = Math.max(1, from); k < from + MAX_STEPS; k++) {
      const term = `${generation}.${k}`;
      const [won] = await this.leases.claim([id], term);
      if (won) return won;
      const row = await this.leases.term(id, term);
      if (row && row.expires_at.getTime() > Date.now()) return 'busy';
    }
    return 'busy';
  }

  async release(turn: Held): Promise<void> {
    await this.leases.release(turn);
  }
}
