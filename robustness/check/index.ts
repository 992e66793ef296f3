/**
 * Every checker over one recorded history (a directory written by the harness, history.ts): the log's own
 * chain, the answers clients got, linearizability per slot (porcupine), each follower's stream, and the
 * final state. Reads the history only; `npm run robustness -- --replay DIR` runs just this.
 */
import { loadHistory, type History } from '../history';
import { ackedWrites, checkAnswers } from './answers';
import { catalogFinal, checkFinal } from './final';
import { checkLinearizability, type LinearizabilityResult, type Unknowns } from './linearizability';
import { checkLog, LogIndex, type Violation } from './log';
import { checkFollower } from './watch';

export interface CheckReport {
  engine: string;
  operations: number;
  /** Per-slot client histories checked by porcupine, plus follower streams checked. */
  histories_checked: number;
  linearizable: boolean;
  linearizability: LinearizabilityResult;
  /** Operations without a definite answer: settled by the log, left out, or left to porcupine. */
  unknown_outcomes: Unknowns;
  /** Violations of the watch guarantees and of the final state. */
  watch_violations: number;
  /** Violations of everything else: the log's chain, the answers. */
  other_violations: number;
  violations: Violation[];
  changes_consumed: Record<string, number>;
  /** Complete positions (bookmarks, page revisions) at which a follower's stream was checked for gaps. */
  positions_checked: Record<string, number>;
}

const WATCH_RULES = new Set(['ordered', 'unique', 'in-log', 'bookmark-ahead', 'gap', 'resumable', 'acked-delivered', 'epoch', 'head-reached', 'final-state', 'final-list', 'peer-state', 'materialized']);

export function checkHistory(dir: string, h: History = loadHistory(dir)): CheckReport {
  const log = new LogIndex(h.log);
  const violations: Violation[] = [...checkLog(log), ...checkAnswers(h.operations, log, h.meta.slots, h.faults)];
  const lin = checkLinearizability(dir, h.operations, h.meta, log, h.faults);
  violations.push(...lin.violations);
  const acked = ackedWrites(h.operations);
  const final = catalogFinal(h.final);
  const consumed: Record<string, number> = {};
  const positions: Record<string, number> = {};
  for (const f of h.followers) {
    violations.push(...checkFollower(f, log, acked, final));
    const answered = f.sessions.filter((s) => s.status === 200);
    consumed[f.name] = answered.reduce((n, s) => n + s.items.filter((i) => i.kind === 'event').length, 0);
    positions[f.name] = answered.reduce((n, s) => n + s.items.filter((i) => i.kind === 'position' && !(i.source === 'page' && s.full)).length, 0);
  }
  violations.push(...checkFinal(h.final, log));
  const watch = violations.filter((v) => WATCH_RULES.has(v.rule)).length;
  return {
    engine: h.meta.engine,
    operations: h.operations.length,
    histories_checked: lin.histories + h.followers.length,
    linearizable: lin.result.linearizable,
    linearizability: lin.result,
    unknown_outcomes: lin.unknowns,
    watch_violations: watch,
    other_violations: violations.length - watch - lin.violations.length,
    violations,
    changes_consumed: consumed,
    positions_checked: positions,
  };
}
