/**
 * The change log as dumped at the end of a run, indexed for the checkers: the record at a revision, the
 * latest change of an entry at or below a revision, the entries changed within a range of revisions, and
 * the catalog's state at any revision (what a consumer that applied the feed up to there must hold).
 */
import type { LogRecord, Snap } from '../history';

export interface Violation {
  /** The guarantee broken: ordered, unique, in-log, bookmark-ahead, gap, resumable, acked-delivered, ... */
  rule: string;
  /** Which history: a follower's name, `operations`, `log`, `final`. */
  where: string;
  detail: string;
}

export class LogIndex {
  readonly byRevision = new Map<number, LogRecord>();
  /** Changes (no fills) in revision order. */
  readonly changes: LogRecord[];
  private readonly byKey = new Map<string, LogRecord[]>();
  readonly head: number;

  constructor(records: LogRecord[]) {
    for (const r of records) this.byRevision.set(r.r, r);
    this.changes = records.filter((r) => r.op !== 'fill').sort((a, b) => a.r - b.r);
    for (const r of this.changes) {
      const list = this.byKey.get(r.key) ?? [];
      list.push(r);
      this.byKey.set(r.key, list);
    }
    this.head = records.reduce((m, r) => Math.max(m, r.r), 0);
  }

  keys(): string[] {
    return [...this.byKey.keys()];
  }

  /** Every change of `key`, oldest first. */
  history(key: string): LogRecord[] {
    return this.byKey.get(key) ?? [];
  }

  /** The change of `key` with the highest revision <= `revision`. */
  latestAt(key: string, revision: number): LogRecord | undefined {
    const list = this.byKey.get(key);
    if (!list) return undefined;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (list[mid]!.r <= revision) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? undefined : list[lo - 1];
  }

  /** The first change of `key` after `revision`, if any. */
  nextAfter(key: string, revision: number): LogRecord | undefined {
    return (this.byKey.get(key) ?? []).find((r) => r.r > revision);
  }

  /** The entries with a change in (after, upTo]. */
  changedIn(after: number, upTo: number): Set<string> {
    const out = new Set<string>();
    let lo = 0;
    let hi = this.changes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.changes[mid]!.r <= after) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.changes.length && this.changes[i]!.r <= upTo; i++) out.add(this.changes[i]!.key);
    return out;
  }

  /** The live entries at `revision`. */
  stateAt(revision: number): Map<string, Snap> {
    const out = new Map<string, Snap>();
    for (const key of this.byKey.keys()) {
      const rec = this.latestAt(key, revision);
      if (rec?.op === 'upsert' && rec.doc) out.set(key, rec.doc);
    }
    return out;
  }
}

/** Why `seen` (what a client or a follower got for `key` at revision `r`) is not the log's record at `r`, or undefined when it is. */
export function mismatch(log: LogIndex, key: string, r: number, type: 'upsert' | 'delete', seen: Snap | undefined): string | undefined {
  const rec = log.byRevision.get(r);
  if (!rec) return `the log has no record at revision ${r}`;
  if (rec.op === 'fill') return `revision ${r} is a fill (no change) in the log`;
  if (rec.key !== key) return `revision ${r} is a change of ${rec.key} in the log, not of ${key}`;
  if (rec.op !== type) return `revision ${r} is a${rec.op === 'upsert' ? 'n upsert' : ' delete'} in the log, not a${type === 'upsert' ? 'n upsert' : ' delete'}`;
  if (type === 'delete' || !seen) return undefined;
  const diff = snapDiff(rec.doc, seen);
  return diff ? `at revision ${r} the log has ${diff}` : undefined;
}

/** What differs between the log's document and what was seen (undefined: nothing the checks look at). */
export function snapDiff(logged: Snap | undefined, seen: Snap): string | undefined {
  if (!logged) return 'no document';
  const fields: Array<keyof Snap> = ['id', 'version', 'revision', 'name', 'marker'];
  const diffs = fields.filter((f) => logged[f] !== seen[f]).map((f) => `${f} ${JSON.stringify(logged[f])} (seen ${JSON.stringify(seen[f])})`);
  if (logged.tags.join(',') !== seen.tags.join(',')) diffs.push(`tags [${logged.tags.join(',')}] (seen [${seen.tags.join(',')}])`);
  return diffs.length > 0 ? diffs.join(', ') : undefined;
}

/**
 * The log itself: per entry, each change follows the one before it (`prev`: the compare-and-set held), and at no
 * revision do two live entries share a name (the entries of a run have no origin: names are unique among them).
 */
export function checkLog(log: LogIndex): Violation[] {
  const out: Violation[] = [...checkNames(log)];
  for (const key of log.keys()) {
    let prev = 0;
    for (const rec of log.history(key)) {
      // A create after a delete follows the delete (its tombstone); the first create follows 0.
      if (rec.prev !== prev) out.push({ rule: 'log-chain', where: 'log', detail: `change ${rec.r} of ${key} follows revision ${rec.prev}, but the entry's previous change is ${prev || 'none'}` });
      prev = rec.r;
    }
  }
  return out;
}

function checkNames(log: LogIndex): Violation[] {
  const out: Violation[] = [];
  const holder = new Map<string, string>();
  const nameOf = new Map<string, string>();
  for (const rec of log.changes) {
    const before = nameOf.get(rec.key);
    if (before !== undefined && holder.get(before) === rec.key) holder.delete(before);
    nameOf.delete(rec.key);
    if (rec.op !== 'upsert' || !rec.doc) continue;
    const other = holder.get(rec.doc.name);
    if (other !== undefined && other !== rec.key) out.push({ rule: 'name-unique', where: 'log', detail: `at revision ${rec.r}, ${rec.key} and ${other} are both named ${rec.doc.name}` });
    holder.set(rec.doc.name, rec.key);
    nameOf.set(rec.key, rec.doc.name);
  }
  return out;
}
