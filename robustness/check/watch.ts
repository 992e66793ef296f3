/**
 * The watch guarantees, checked on each follower's recorded stream against the change log as finally read
 * (etcd's watch guarantees, adapted to a feed that may collapse several changes of one entry into its latest
 * state, SPEC 12):
 *
 * - ordered: within a session, change revisions strictly increase; a position never goes back or below a
 *   change already delivered;
 * - unique: no change at or below the position the session resumed from, none twice;
 * - in-log: every change delivered is the log's record at its revision (same entry, same kind, same state);
 * - bookmark-ahead: no change at or below a position (bookmark, page revision) already given in the session;
 * - gap: at every complete position P of a session that began at S, the session has delivered, for every
 *   entry changed in (S, P], exactly its latest change at or below P (a list from 0 leaves deleted entries out);
 * - resumable: a session begins where the follower's previous one ended (the peer: at 0 or at a position
 *   it was given);
 * - acked-delivered: every acknowledged write at or below the follower's last position reached it;
 * - epoch: every session carries the catalog's one epoch;
 * - final-state / head-reached: the follower ends holding exactly the catalog's final state.
 */
import type { FollowerHistory, Session, Snap } from '../history';
import { mismatch, snapDiff, type LogIndex, type Violation } from './log';

/** A write the service acknowledged with the entry's revision. */
export interface AckedWrite {
  op: string;
  key: string;
  revision: number;
}

/** The catalog's final state: a list from 0 read on a replica at the end. */
export interface FinalList {
  revision: number;
  items: Snap[];
}

const describeSession = (f: FollowerHistory, s: Session) => `${f.name} session ${s.n} (replica ${s.replica}, since ${s.since})`;

/** The checks of one session on its own. */
function checkSession(f: FollowerHistory, s: Session, log: LogIndex, out: Violation[]): void {
  const where = f.name;
  const at = describeSession(f, s);
  const delivered = new Map<string, number>();
  let lastEvent = s.since;
  let position = s.since;
  for (const item of s.items) {
    if (item.kind === 'event') {
      if (item.revision <= s.since) out.push({ rule: 'unique', where, detail: `${at}: change ${item.revision} of ${item.id} is at or below the position the session resumed from` });
      else if (item.revision === lastEvent) out.push({ rule: 'unique', where, detail: `${at}: change ${item.revision} delivered twice` });
      else if (item.revision < lastEvent) out.push({ rule: 'ordered', where, detail: `${at}: change ${item.revision} of ${item.id} after change ${lastEvent}` });
      else if (item.revision <= position) out.push({ rule: 'bookmark-ahead', where, detail: `${at}: change ${item.revision} of ${item.id} delivered after position ${position}, which promised every change up to it` });
      const wrong = mismatch(log, item.id, item.revision, item.type, item.entry);
      if (wrong) out.push({ rule: 'in-log', where, detail: `${at}: ${item.type} of ${item.id} at revision ${item.revision}: ${wrong}` });
      lastEvent = Math.max(lastEvent, item.revision);
      delivered.set(item.id, item.revision);
      continue;
    }
    if (item.revision < position || item.revision < lastEvent) {
      out.push({ rule: 'ordered', where, detail: `${at}: position ${item.revision} after ${item.revision < position ? `position ${position}` : `change ${lastEvent}`}` });
      continue;
    }
    position = item.revision;
    if (item.source === 'page' && s.full) continue; // a page cut at its limit: where to go on, not complete
    checkComplete(log, s, position, delivered, (detail) => out.push({ rule: 'gap', where, detail: `${at}: at position ${position}: ${detail}` }));
  }
}

/**
 * At complete position P of a session that began at S: every entry changed in (S, P] was delivered at its
 * latest change <= P (a list from 0 leaves out entries deleted at P).
 */
function checkComplete(log: LogIndex, s: Session, p: number, delivered: Map<string, number>, report: (detail: string) => void): void {
  for (const key of log.changedIn(s.since, p)) {
    const latest = log.latestAt(key, p)!;
    const got = delivered.get(key);
    // A list from 0 leaves out what is deleted (a stream from 0 may also send the delete, once it follows the list).
    if (s.since === 0 && latest.op === 'delete' && got === undefined) continue;
    if (got === latest.r) continue;
    report(got === undefined ? `${latest.op} of ${key} at revision ${latest.r} was never delivered` : `${key} was delivered at revision ${got}, but its latest change up to here is ${latest.r} (${latest.op})`);
  }
}

/** Where a session left its follower: the last id (change or bookmark) or page revision it received. */
function resumePoint(s: Session, before: number): number {
  let at = before;
  for (const item of s.items) at = Math.max(at, item.revision);
  return at;
}

/** The follower's state after applying its sessions in order (a session from 0 is a list: it replaces the state). */
function applyAll(f: FollowerHistory): Map<string, Snap> {
  let state = new Map<string, Snap>();
  for (const s of f.sessions) {
    if (s.status !== 200) continue;
    if (s.since === 0) state = new Map();
    for (const item of s.items) {
      if (item.kind !== 'event') continue;
      if (item.type === 'delete') state.delete(item.id);
      else if (item.entry) state.set(item.id, item.entry);
    }
  }
  return state;
}

/** The highest complete position the follower was given (a list's or page's revision, a bookmark). */
export function lastPosition(f: FollowerHistory): number {
  let top = 0;
  for (const s of f.sessions) for (const item of s.items) if (item.kind === 'position' && !(item.source === 'page' && s.full)) top = Math.max(top, item.revision);
  return top;
}

/** Differences between two catalog states, for a report (at most a few). */
export function stateDiff(want: Map<string, Snap>, got: Map<string, Snap>): string[] {
  const out: string[] = [];
  for (const [id, w] of want) {
    const g = got.get(id);
    if (!g) out.push(`${id} missing (expected revision ${w.revision})`);
    else {
      const d = snapDiff(w, g);
      if (d) out.push(`${id}: expected ${d}`);
    }
  }
  for (const [id, g] of got) if (!want.has(id)) out.push(`${id} present at revision ${g.revision}, absent from the catalog`);
  return out.slice(0, 5);
}

function checkResumption(f: FollowerHistory, out: Violation[]): void {
  let expected = 0;
  const given = new Set<number>([0]);
  for (const s of f.sessions) {
    const ok = f.linear ? s.since === expected : given.has(s.since);
    if (!ok) out.push({ rule: 'resumable', where: f.name, detail: `${describeSession(f, s)} began at ${s.since}, ${f.linear ? `but the follower's last position was ${expected}` : 'a position it was never given'}` });
    if (s.status === 200) expected = resumePoint(s, s.since);
    for (const item of s.items) if (item.kind === 'position') given.add(item.revision);
  }
}

function checkEpochs(f: FollowerHistory, out: Violation[]): void {
  const first = f.sessions.find((s) => s.epoch)?.epoch;
  for (const s of f.sessions) if (s.epoch && s.epoch !== first) out.push({ rule: 'epoch', where: f.name, detail: `${describeSession(f, s)} carried epoch ${s.epoch}, an earlier one ${first}` });
}

/**
 * Every acknowledged write at or below the follower's last position reached it: a change of its entry at
 * or after its revision, or a list (from 0) that left the entry out because it was deleted by then.
 */
function checkAcked(f: FollowerHistory, log: LogIndex, acked: AckedWrite[], out: Violation[]): void {
  const top = lastPosition(f);
  const highest = new Map<string, number>();
  const lists: number[] = [];
  for (const s of f.sessions) {
    if (s.status !== 200) continue;
    for (const item of s.items) {
      if (item.kind === 'event') highest.set(item.id, Math.max(highest.get(item.id) ?? 0, item.revision));
      else if (s.since === 0 && !(item.source === 'page' && s.full)) lists.push(item.revision);
    }
  }
  for (const w of acked) {
    if (w.revision > top || (highest.get(w.key) ?? 0) >= w.revision) continue;
    if (lists.some((p) => p >= w.revision && log.latestAt(w.key, p)?.op === 'delete')) continue;
    out.push({ rule: 'acked-delivered', where: f.name, detail: `write ${w.op} of ${w.key}, acknowledged at revision ${w.revision}, never reached the follower (its last position is ${top})` });
  }
}

/** Every check of one follower's history. `final` is the catalog's final state, when the run ended quiescent. */
export function checkFollower(f: FollowerHistory, log: LogIndex, acked: AckedWrite[], final?: FinalList): Violation[] {
  const out: Violation[] = [];
  for (const s of f.sessions) if (s.status === 200) checkSession(f, s, log, out);
  checkResumption(f, out);
  checkEpochs(f, out);
  checkAcked(f, log, acked, out);
  if (final && f.linear) {
    const top = lastPosition(f);
    if (top < final.revision) out.push({ rule: 'head-reached', where: f.name, detail: `the follower's last position is ${top}, the catalog's final revision ${final.revision}` });
    else {
      const diff = stateDiff(new Map(final.items.map((i) => [i.id, i])), applyAll(f));
      if (diff.length > 0) out.push({ rule: 'final-state', where: f.name, detail: `the follower's final state differs from the catalog's: ${diff.join('; ')}` });
    }
  }
  return out;
}
