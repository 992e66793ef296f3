/**
 * Checks of what clients were answered, against the change log as finally read:
 *
 * - acked-in-log: a write answered 2xx with the entry at revision r is the log's change at r (same entry,
 *   same state); a read (GET) answered an entry answers a state the log holds at its revision;
 * - query-in-log / query-stale: a query answered with `X-Catalog-Revision: R` answers states the log holds,
 *   none older than the catalog's state at R, and leaves out no entry that matched at R and did not change
 *   after R (SPEC 12: "the result includes every change up to R");
 * - get-stale: a GET served from a replica's view (`X-Catalog-Revision: R`, 200 or 404) answers the entry's
 *   state at R exactly: its latest change up to R (absent when that is a delete, or there is none);
 * - read-your-writes: a query or a GET from the view on a replica reflects every write that replica (the same
 *   process: not across a restart) acknowledged before it began (SPEC 13; docs/queries.md);
 * - unexpected-answer: a status the traffic never provokes (400, 413, 429...): the harness or the service is wrong.
 */
import type { Fault, Operation } from '../history';
import { mismatch, type LogIndex, type Violation } from './log';
import type { AckedWrite } from './watch';

const ok = (o: Operation) => o.status >= 200 && o.status < 300;
/** Statuses the traffic provokes as refusals of the model (absent, name or id taken, stale If-Match). */
const EXPECTED_REFUSALS = new Set([404, 409, 412]);

/** Writes acknowledged with the entry's revision (creates and updates answered 2xx). */
export function ackedWrites(ops: Operation[]): AckedWrite[] {
  return ops.filter((o) => (o.kind === 'create' || o.kind === 'update') && ok(o) && o.entry).map((o) => ({ op: o.op, key: o.target!, revision: o.entry!.revision }));
}

function checkAnsweredEntries(ops: Operation[], log: LogIndex, out: Violation[]): void {
  for (const o of ops) {
    if (!ok(o) || !o.entry || o.kind === 'query') continue;
    const wrong = mismatch(log, o.target!, o.entry.revision, 'upsert', o.entry);
    if (wrong) out.push({ rule: 'acked-in-log', where: 'operations', detail: `${o.op} (${o.kind} of ${o.target} on replica ${o.replica}) was answered revision ${o.entry.revision}: ${wrong}` });
  }
}

function checkQuery(o: Operation, log: LogIndex, slotIds: string[], out: Violation[]): void {
  const r = o.catalogRevision!;
  const items = o.items ?? [];
  const say = (rule: string, detail: string) => out.push({ rule, where: 'operations', detail: `${o.op} (query of ${o.name} on replica ${o.replica}, X-Catalog-Revision ${r}): ${detail}` });
  for (const item of items) {
    const wrong = mismatch(log, item.id, item.revision, 'upsert', item);
    if (wrong) say('query-in-log', `${item.id}: ${wrong}`);
    const atR = log.latestAt(item.id, r);
    if (atR && atR.r > item.revision) say('query-stale', `${item.id} answered at revision ${item.revision}, but it changed at ${atR.r} <= ${r}`);
  }
  const answered = new Set(items.map((i) => i.id));
  for (const id of slotIds) {
    if (answered.has(id)) continue;
    const atR = log.latestAt(id, r);
    if (atR?.op !== 'upsert' || atR.doc?.name !== o.name) continue;
    // Answered from the database, the query may show a later state (a delete after R).
    if (log.nextAfter(id, r)) continue;
    say('query-stale', `${id} matched at revision ${atR.r} <= ${r} and never changed again, but is missing`);
  }
}

/** Whether replica `replica` was restarted (another process) between `from` and `to`. */
function restarted(faults: Fault[], replica: number, from: number, to: number): boolean {
  return faults.some((f) => f.kind === 'kill' && f.target === replica && f.at < to && f.end > from);
}

/**
 * Read-your-writes: a write of an entry of the queried slot, acknowledged by the same replica process before
 * the query began, shows in the answer at its revision or a later one (or the entry is absent because it was
 * deleted after it). A query that falls back to the database carries a lower X-Catalog-Revision than its content
 * (SPEC 12: R is a revision the answer includes everything up to), so the content is what is checked.
 */
function checkReadYourWrites(o: Operation, writes: Operation[], log: LogIndex, slotIds: string[], faults: Fault[], out: Violation[]): void {
  const answered = new Map((o.items ?? []).map((i) => [i.id, i.revision]));
  for (const w of writes) {
    if (w.replica !== o.replica || w.ret! >= o.call || !slotIds.includes(w.target!) || restarted(faults, o.replica, w.ret!, o.call)) continue;
    const at = answered.get(w.target!);
    const deletedAfter = log.history(w.target!).some((r) => r.r > w.entry!.revision && r.op === 'delete');
    if ((at !== undefined && at >= w.entry!.revision) || (at === undefined && deletedAfter)) continue;
    out.push({
      rule: 'read-your-writes',
      where: 'operations',
      detail: `${o.op} (${o.kind === 'get' ? `GET of ${o.target}` : `query of ${o.name}`} on replica ${o.replica}) answered ${w.target} ${at === undefined ? 'absent' : `at revision ${at}`}, after the replica acknowledged ${w.op} of it at revision ${w.entry!.revision}`,
    });
  }
}

/** A GET answered from a replica's view at revision R: the entry's state at R, no older and no newer. */
function checkViewGet(o: Operation, log: LogIndex, out: Violation[]): void {
  const r = o.catalogRevision!;
  const atR = log.latestAt(o.target!, r);
  const expected = atR?.op === 'upsert' ? atR.r : undefined;
  const answered = o.entry?.revision;
  if (answered === expected) return;
  const state = (rev: number | undefined) => (rev === undefined ? 'absent' : `at revision ${rev}`);
  out.push({ rule: 'get-stale', where: 'operations', detail: `${o.op} (GET of ${o.target} on replica ${o.replica}, X-Catalog-Revision ${r}) answered it ${state(answered)}; the log has it ${state(expected)} at ${r}` });
}

/** Queries and GETs from the view against the log, and read-your-writes per replica process. */
function checkQueries(ops: Operation[], log: LogIndex, slots: Array<{ ids: string[] }>, faults: Fault[], out: Violation[]): void {
  const writes = ops.filter((o) => (o.kind === 'create' || o.kind === 'update') && ok(o) && o.entry && o.ret !== null);
  for (const o of ops) {
    if (o.kind === 'get' && o.catalogRevision !== undefined && (ok(o) || o.status === 404)) {
      checkViewGet(o, log, out);
      checkReadYourWrites({ ...o, items: o.entry ? [o.entry] : [] }, writes, log, [o.target!], faults, out);
      continue;
    }
    if (o.kind !== 'query' || !ok(o)) continue;
    const ids = slots[o.slot]?.ids ?? [];
    if (o.catalogRevision !== undefined) checkQuery(o, log, ids, out);
    checkReadYourWrites(o, writes, log, ids, faults, out);
  }
}

function checkStatuses(ops: Operation[], out: Violation[]): void {
  for (const o of ops) {
    if (o.status >= 400 && o.status < 500 && !EXPECTED_REFUSALS.has(o.status)) out.push({ rule: 'unexpected-answer', where: 'operations', detail: `${o.op} (${o.kind} on replica ${o.replica}) was answered ${o.status}` });
  }
}

export function checkAnswers(ops: Operation[], log: LogIndex, slots: Array<{ ids: string[] }>, faults: Fault[]): Violation[] {
  const out: Violation[] = [];
  checkStatuses(ops, out);
  checkAnsweredEntries(ops, log, out);
  checkQueries(ops, log, slots, faults, out);
  return out;
}
