/**
 * A lease that expires, built from unique inserts only (FerretDB v1 has no atomic filtered update; see
 * src/db/atomic.ts): time is cut into buckets of `ms`, and holding the lease in bucket b means having won
 * the claim `<key>@<b>`. Any replica may claim the current bucket; only the holder claims the next one,
 * in the second half of the current one (renewal). So while the holder lives (and calls `hold()` at least
 * every ms/2), nobody else can win a bucket; when it dies, the next bucket goes to whoever claims first,
 * at most two buckets later. A holder that stalls past its bucket may overlap its successor for one
 * attempt (at-least-once allows a duplicate); it finds out at its next `hold()` and stops.
 */
import type { Claims } from '../db/atomic';

export type HoldResult = 'held' | 'acquired' | 'lost';

export class BucketLease {
  private readonly won = new Set<number>();

  constructor(
    private readonly claims: Claims,
    private readonly key: string,
    readonly ms: number,
  ) {}

  get holding(): boolean {
    return this.won.has(Math.floor(Date.now() / this.ms));
  }

  /** 'acquired' when this call won the lease after not holding it (state must be reloaded), 'held', or 'lost'. */
  async hold(): Promise<HoldResult> {
    const now = Date.now();
    const b = Math.floor(now / this.ms);
    const had = this.won.has(b - 1) || this.won.has(b);
    let result: HoldResult = 'held';
    if (!this.won.has(b)) {
      if (!(await this.claims.claimOnce(`${this.key}@${b}`))) {
        this.won.clear();
        return 'lost';
      }
      this.won.add(b);
      if (!had) result = 'acquired';
    }
    if (now - b * this.ms >= this.ms / 2 && !this.won.has(b + 1)) {
      if (await this.claims.claimOnce(`${this.key}@${b + 1}`)) this.won.add(b + 1);
    }
    for (const w of this.won) if (w < b) this.won.delete(w);
    return result;
  }
}
