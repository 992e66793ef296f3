/**
 * The end of a run, once the catalog is quiescent (no client, no sweep): every replica lists exactly the
 * log's state (final-list), the collection holds it (materialized: no writer left it behind or ahead of the
 * log), and the peer's mirror holds it, each mirrored entry at the revision of the state it mirrors (peer-state).
 */
import type { FinalState, Snap } from '../history';
import { snapDiff, type LogIndex, type Violation } from './log';
import { stateDiff, type FinalList } from './watch';

const byId = (items: Snap[]) => new Map(items.map((i) => [i.id, i]));

/** The list the other checks compare with: the one at the highest revision. */
export function catalogFinal(final: FinalState): FinalList | undefined {
  return [...final.lists].sort((a, b) => b.revision - a.revision)[0];
}

export function checkFinal(final: FinalState, log: LogIndex): Violation[] {
  const out: Violation[] = [];
  for (const list of final.lists) {
    const diff = stateDiff(log.stateAt(list.revision), byId(list.items));
    if (diff.length > 0) out.push({ rule: 'final-list', where: 'final', detail: `replica ${list.replica}'s list at revision ${list.revision} differs from the log: ${diff.join('; ')}` });
  }
  const epochs = new Set(final.lists.map((l) => l.epoch));
  if (epochs.size > 1) out.push({ rule: 'epoch', where: 'final', detail: `the replicas answer different epochs: ${[...epochs].join(', ')}` });
  const head = log.stateAt(log.head);
  const stored = stateDiff(head, byId(final.collection));
  if (stored.length > 0) out.push({ rule: 'materialized', where: 'final', detail: `the collection differs from the log's final state: ${stored.join('; ')}` });
  if (final.peer) checkPeer(final.peer, log, out);
  return out;
}

/** The peer's mirror: one entry per live entry of the catalog, each the log's state at its origin revision, which is the latest. */
function checkPeer(peer: NonNullable<FinalState['peer']>, log: LogIndex, out: Violation[]): void {
  const say = (detail: string) => out.push({ rule: 'peer-state', where: 'peer', detail });
  if (peer.position === null || peer.position < log.head) say(`the peer's position is ${peer.position}, the catalog's head ${log.head}`);
  const head = log.stateAt(log.head);
  const mirrored = new Set<string>();
  for (const m of peer.items) {
    const rec = log.byRevision.get(m.originRevision);
    if (!rec || rec.op !== 'upsert' || !rec.doc) {
      say(`mirrored entry ${m.id} mirrors revision ${m.originRevision}, which is no upsert in the log`);
      continue;
    }
    mirrored.add(rec.key);
    const latest = head.get(rec.key);
    if (!latest) say(`mirrored entry ${m.id} mirrors ${rec.key} (revision ${m.originRevision}), which is deleted in the catalog`);
    else if (latest.revision !== m.originRevision) say(`mirrored entry ${m.id} mirrors ${rec.key} at revision ${m.originRevision}, the catalog holds it at ${latest.revision}`);
    const diff = snapDiff({ ...rec.doc, id: m.id, revision: m.revision }, m);
    if (diff) say(`mirrored entry ${m.id} is not the state of ${rec.key} at revision ${m.originRevision}: ${diff}`);
  }
  for (const key of head.keys()) if (!mirrored.has(key)) say(`${key} (revision ${head.get(key)!.revision}) is not mirrored by the peer`);
}
