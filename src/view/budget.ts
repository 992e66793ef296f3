/**
 * Time limits of filter evaluation inside the service (SPEC 5: every query runs with a time limit wherever it
 * runs). Evaluation is synchronous, on the event loop, so it runs in slices: the clock is checked before every
 * entry and every regex match, and a slice ends after SLICE_MS. What called the evaluation then yields (a view
 * query continues after other work had its turn) or ends early (a change-feed page ends at the last entry it
 * evaluated; the consumer continues from there). A query has a total budget on top (QUERY_TIMEOUT_MS); past it,
 * or when one entry alone cannot be evaluated within a slice, the answer is a 503 naming the limit. Pure.
 */
import { ServiceUnavailableError } from '../errors';
import { MAX_MATCH_COST } from '../lib/regex';

/** Longest stretch of filter evaluation on the event loop; also the most one entry's evaluation may take. */
export const SLICE_MS = 50;

/** A query, page or filter ran out of its time: 503 with Retry-After, naming the limit. */
export class QueryBudgetError extends ServiceUnavailableError {
  /** `limit`: what ran out (a setting's name, or what the limit bounds); `value`: its value (ms, or units). */
  constructor(detail: string, limit: string, value: number) {
    super(detail, 5);
    this.extensions.limit = limit;
    this.extensions.limit_value = value;
  }
}

/** Thrown inside an evaluation when its slice is over; the caller catches it and yields or ends its page. */
export class SliceOver extends Error {}

export class FilterBudget {
  private readonly deadline: number;
  private sliceEnd = 0;

  /** `totalMs`/`limitName`: the whole query's budget and the setting that names it (Infinity: slices only). */
  constructor(private readonly totalMs = Infinity, private readonly limitName = '') {
    this.deadline = performance.now() + totalMs;
    this.startSlice();
  }

  startSlice(): void {
    this.sliceEnd = performance.now() + SLICE_MS;
  }

  /** Throws QueryBudgetError past the total budget, SliceOver past the slice. */
  check(): void {
    const now = performance.now();
    if (now > this.deadline) {
      throw new QueryBudgetError(`The query ran out of its time budget (${this.limitName} = ${this.totalMs} ms) in the in-memory view; narrow the filter, simplify its regexes or lower the limit.`, this.limitName, this.totalMs);
    }
    if (now > this.sliceEnd) throw new SliceOver();
  }

  /** The error for a match that would cost more than one match may (its cost is known before it runs). */
  static matchTooCostly(size: number, length: number): QueryBudgetError {
    return new QueryBudgetError(
      `A $regex of ${size} instructions over a value of ${length} characters is more work than one match may take (instructions × characters at most ${MAX_MATCH_COST}); simplify the pattern or match a shorter field.`,
      'regex match cost (instructions × characters)',
      MAX_MATCH_COST,
    );
  }

  /** The error for one entry whose evaluation did not fit in a slice (no progress can be made). */
  static entryTooSlow(): QueryBudgetError {
    return new QueryBudgetError(`Evaluating the filter on one entry took longer than ${SLICE_MS} ms, the most one entry may take; simplify the filter's regexes.`, 'filter evaluation per entry (ms)', SLICE_MS);
  }
}

let active: FilterBudget | undefined;

/** Runs `fn` (a synchronous evaluation) with `budget` as the one that checkBudget() charges. */
export function withBudget<T>(budget: FilterBudget | undefined, fn: () => T): T {
  const outer = active;
  active = budget;
  try {
    return fn();
  } finally {
    active = outer;
  }
}

/** Called by the evaluation before costly steps (each regex match): throws when the running budget is spent. */
export function checkBudget(): void {
  active?.check();
}
