/**
 * The storage crawl's tags handed to an InventorySink in (repository, tag) order while repositories are
 * crawled side by side (STORAGE_CONCURRENCY): the crawl takes repositories in sorted order and each one's tags
 * sorted, so the rows of the lowest repository not yet done (the head) go straight out, in batches, and those
 * of later repositories wait here until every repository before them is done. Memory stays bounded: past
 * `maxHeld` waiting rows, the workers of later repositories wait for the head to move on (the head's worker
 * never waits here, so the crawl always moves). Writes to the sink run one at a time, each awaited by the
 * worker that filled the batch (the crawl slows to the sink's pace); after a failed write the rows are dropped.
 */
import type { InventoryRow, InventorySink } from './types';

interface Held {
  rows: InventoryRow[];
  done: boolean;
}

export class OrderedRows {
  /** The repository (by its index in the crawl's sorted list) whose rows go out now. */
  private head = 0;
  private readonly held = new Map<number, Held>();
  private heldRows = 0;
  private out: InventoryRow[] = [];
  private writing: Promise<void> = Promise.resolve();
  private readonly waiting: Array<() => void> = [];
  /** The sink's first failure (no rows are written after it). */
  failure: unknown = undefined;
  /** Rows handed to the sink. */
  written = 0;

  constructor(
    private readonly sink: InventorySink,
    private readonly batch: number,
    private readonly maxHeld: number,
  ) {}

  /** Adds the next row of repository `repo` (rows of one repository come in order). */
  async add(repo: number, row: InventoryRow): Promise<void> {
    if (this.failure !== undefined) return;
    if (repo === this.head) {
      this.out.push(row);
      if (this.out.length >= this.batch) await this.flush(false);
      return;
    }
    this.heldOf(repo).rows.push(row);
    this.heldRows++;
    while (this.heldRows > this.maxHeld && repo !== this.head && this.failure === undefined) await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  /** Repository `repo` has no more rows (called for every repository taken, whatever became of it). */
  async done(repo: number): Promise<void> {
    this.heldOf(repo).done = true;
    if (repo !== this.head) return;
    for (;;) {
      const h = this.held.get(this.head);
      if (!h) break;
      this.release(h);
      if (!h.done) break; // the new head is still being crawled: its next rows go straight out
      this.held.delete(this.head);
      this.head++;
    }
    for (const wake of this.waiting.splice(0)) wake();
    await this.flush(false);
  }

  /** Writes everything still held, in repository order (a crawl that stopped early leaves repositories unfinished). */
  async finish(): Promise<void> {
    for (const repo of [...this.held.keys()].sort((a, b) => a - b)) this.release(this.held.get(repo)!);
    this.held.clear();
    for (const wake of this.waiting.splice(0)) wake();
    await this.flush(true);
  }

  private heldOf(repo: number): Held {
    let h = this.held.get(repo);
    if (!h) {
      h = { rows: [], done: false };
      this.held.set(repo, h);
    }
    return h;
  }

  private release(h: Held): void {
    for (const row of h.rows) this.out.push(row);
    this.heldRows -= h.rows.length;
    h.rows = [];
  }

  /** Queues full batches (and with `all` the rest) behind the write in progress, and waits for them. */
  private async flush(all: boolean): Promise<void> {
    while (this.out.length >= this.batch || (all && this.out.length > 0)) {
      const rows = this.out.splice(0, this.batch);
      this.writing = this.writing.then(async () => {
        if (this.failure !== undefined) return;
        try {
          await this.sink.add(rows);
          this.written += rows.length;
        } catch (e) {
          this.failure = e;
          for (const wake of this.waiting.splice(0)) wake();
        }
      });
    }
    await this.writing;
  }
}
