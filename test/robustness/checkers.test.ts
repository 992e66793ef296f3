/**
 * The robustness checkers (robustness/check/) on histories made by hand: a history that keeps every
 * guarantee passes, and for each rule a doctored history breaks it and the checker names it. A checker that
 * cannot fail would prove nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkAnswers } from '../../robustness/check/answers';
import { checkFinal } from '../../robustness/check/final';
import { checkLinearizability } from '../../robustness/check/linearizability';
import { checkLog, LogIndex, type Violation } from '../../robustness/check/log';
import { checkFollower, type AckedWrite } from '../../robustness/check/watch';
import type { FinalState, FollowerHistory, LogRecord, Meta, Operation, Session, Snap, StreamItem } from '../../robustness/history';

const A = 'aaaaaaaa-0000-4000-8000-000000000001';
const B = 'bbbbbbbb-0000-4000-8000-000000000002';
const NAME = 'slot-0';

const doc = (id: string, r: number, version: number, marker: string, tags: string[] = []): Snap => ({ id, version, revision: r, name: NAME, tags, marker });
const up = (r: number, key: string, prev: number, version: number, marker: string, tags: string[] = []): LogRecord => ({ r, key, prev, op: 'upsert', w: 'w1', doc: doc(key, r, version, marker, tags) });
const del = (r: number, key: string, prev: number): LogRecord => ({ r, key, prev, op: 'delete', w: 'w1' });
const fill = (r: number): LogRecord => ({ r, key: '~fill', prev: r, op: 'fill', w: 'w1' });

/**
 * The log every test starts from: A created (1), B created... no: B's create is refused by name. A updated (2),
 * a probe result on A (3, same version), a hole filled (4), A deleted (5), B created (6), B updated (7).
 */
const LOG: LogRecord[] = [up(1, A, 0, 1, 'c0-1'), up(2, A, 1, 2, 'c1-1'), up(3, A, 2, 2, 'c1-1'), fill(4), del(5, A, 3), up(6, B, 0, 1, 'c2-1'), up(7, B, 6, 2, 'c0-2')];
const log = () => new LogIndex(LOG);

const ev = (revision: number, id: string, type: 'upsert' | 'delete' = 'upsert'): StreamItem => {
  const rec = LOG.find((r) => r.r === revision);
  return { kind: 'event', revision, type, id, at: 0, ...(type === 'upsert' ? { entry: rec?.doc ?? doc(id, revision, 1, 'x') } : {}) };
};
const pos = (revision: number, source: 'bookmark' | 'page' = 'bookmark'): StreamItem => ({ kind: 'position', revision, source, at: 0 });
const session = (n: number, since: number, items: StreamItem[], extra: Partial<Session> = {}): Session => ({ n, replica: 0, since, opened: 0, closed: 0, status: 200, end: 'client', items, epoch: 'e1', ...extra });
const follower = (sessions: Session[], kind: FollowerHistory['kind'] = 'sse'): FollowerHistory => ({ name: kind, kind, linear: kind !== 'peer', sessions });
const FINAL = { revision: 7, items: [doc(B, 7, 2, 'c0-2')] };

const rules = (vs: Violation[]) => [...new Set(vs.map((v) => v.rule))].sort();

/** A stream that keeps every guarantee: a list (A collapsed to its state at 3), live changes, a resume, a delete after the list. */
function goodSse(): FollowerHistory {
  return follower([
    session(0, 0, [ev(3, A), pos(3), ev(5, A, 'delete')]),
    session(1, 5, [ev(7, B), pos(7)]),
  ]);
}

describe('watch checks', () => {
  test('a stream that keeps every guarantee passes, with collapsed changes, a list and a resume', () => {
    expect(checkFollower(goodSse(), log(), [], FINAL)).toEqual([]);
    const pages = follower([session(0, 0, [ev(3, A), pos(3, 'page')], { end: 'page' }), session(1, 3, [ev(5, A, 'delete'), ev(7, B), pos(7, 'page')], { end: 'page' })], 'longpoll');
    expect(checkFollower(pages, log(), [{ op: 'c0-2', key: B, revision: 7 }], FINAL)).toEqual([]);
  });

  test('ordered: a change after a later one', () => {
    const f = follower([session(0, 0, [ev(3, A), ev(2, A), pos(3)])]);
    expect(rules(checkFollower(f, log(), []))).toContain('ordered');
  });

  test('unique: a change twice, or at the position the session resumed from', () => {
    expect(rules(checkFollower(follower([session(0, 0, [ev(3, A), ev(3, A), pos(3)])]), log(), []))).toContain('unique');
    expect(rules(checkFollower(follower([session(0, 3, [ev(3, A), pos(3)])]), log(), []))).toContain('unique');
  });

  test('in-log: a change the log does not hold (wrong state, a fill, another entry)', () => {
    const wrong: StreamItem = { kind: 'event', revision: 2, type: 'upsert', id: A, at: 0, entry: doc(A, 2, 9, 'c1-1') };
    expect(rules(checkFollower(follower([session(0, 1, [wrong, pos(2)])]), log(), []))).toContain('in-log');
    expect(rules(checkFollower(follower([session(0, 3, [ev(4, A), pos(4)])]), log(), []))).toContain('in-log');
    expect(rules(checkFollower(follower([session(0, 5, [ev(6, A), pos(6)])]), log(), []))).toContain('in-log');
  });

  test('bookmark-ahead: a change at or below a bookmark already sent', () => {
    const f = follower([session(0, 5, [pos(6), ev(6, B), pos(7)])]);
    expect(rules(checkFollower(f, log(), []))).toContain('bookmark-ahead');
  });

  test('gap: a position without a change at or below it', () => {
    // The delete of A (5) is missing between 3 and 7.
    const f = follower([session(0, 3, [ev(7, B), pos(7)])]);
    const vs = checkFollower(f, log(), []);
    expect(rules(vs)).toContain('gap');
    expect(vs.find((v) => v.rule === 'gap')!.detail).toMatch(/delete of aaaaaaaa.* at revision 5 was never delivered/);
    // A list holding an entry in an older state than its position.
    expect(rules(checkFollower(follower([session(0, 0, [ev(2, A), pos(3)])]), log(), []))).toContain('gap');
  });

  test('resumable: a session that does not begin where the last one ended (the peer: at a position never given)', () => {
    const f = follower([session(0, 0, [ev(3, A), pos(3)]), session(1, 6, [ev(7, B), pos(7)])]);
    expect(rules(checkFollower(f, log(), []))).toContain('resumable');
    const peer = follower([session(0, 0, [ev(3, A), pos(3, 'page')], { end: 'page' }), session(1, 2, [], { end: 'page' })], 'peer');
    expect(rules(checkFollower(peer, log(), []))).toContain('resumable');
  });

  test('acked-delivered: an acknowledged write at or below the last position never reached the follower', () => {
    const acked: AckedWrite[] = [{ op: 'c2-1', key: B, revision: 6 }];
    // Listed at 7 without B.
    const f = follower([session(0, 0, [pos(7)])]);
    expect(rules(checkFollower(f, log(), acked))).toEqual(['acked-delivered', 'gap']);
    // A write whose entry was deleted before the list: the list rightly leaves it out.
    const deleted = follower([session(0, 0, [ev(7, B), pos(7)])]);
    expect(checkFollower(deleted, log(), [{ op: 'c1-1', key: A, revision: 2 }])).toEqual([]);
  });

  test('epoch: sessions carrying different epochs', () => {
    const f = goodSse();
    f.sessions[1]!.epoch = 'e2';
    expect(rules(checkFollower(f, log(), [], FINAL))).toEqual(['epoch']);
  });

  test('final-state and head-reached: a follower that ends elsewhere than the catalog', () => {
    const short = follower([session(0, 0, [ev(3, A), pos(3)])]);
    expect(rules(checkFollower(short, log(), [], FINAL))).toEqual(['head-reached']);
    const f = goodSse();
    const other = { revision: 7, items: [doc(B, 7, 3, 'c9-9')] };
    expect(rules(checkFollower(f, log(), [], other))).toEqual(['final-state']);
  });
});

describe('log and final checks', () => {
  test('log-chain: a change that does not follow the entry\'s previous change (a lost compare-and-set)', () => {
    expect(checkLog(log())).toEqual([]);
    const forked = new LogIndex([...LOG.filter((r) => r.r !== 7), up(7, B, 0, 1, 'c3-3')]);
    expect(rules(checkLog(forked))).toEqual(['log-chain']);
  });

  test('name-unique: two live entries with one name at some revision', () => {
    // B created while A still holds the name: both live at revision 2.
    const both = new LogIndex([up(1, A, 0, 1, 'c0-1'), up(2, B, 0, 1, 'c2-1'), del(3, A, 1)]);
    expect(rules(checkLog(both))).toEqual(['name-unique']);
  });

  const good = (): FinalState => ({
    lists: [{ replica: 0, revision: 7, epoch: 'e1', items: [doc(B, 7, 2, 'c0-2')] }],
    collection: [doc(B, 7, 2, 'c0-2')],
    peer: { position: 7, items: [{ ...doc('src:x', 12, 2, 'c0-2'), originRevision: 7 }] },
  });

  test('a quiescent end that matches the log passes', () => {
    expect(checkFinal(good(), log())).toEqual([]);
  });

  test('final-list, materialized, peer-state: a replica, the collection or the peer that differs from the log', () => {
    const f = good();
    f.lists[0]!.items = [doc(B, 6, 1, 'c2-1')];
    expect(rules(checkFinal(f, log()))).toEqual(['final-list']);
    const g = good();
    g.collection = [doc(B, 6, 1, 'c2-1')];
    expect(rules(checkFinal(g, log()))).toEqual(['materialized']);
    const h = good();
    h.peer!.items[0]!.originRevision = 6;
    expect(rules(checkFinal(h, log()))).toEqual(['peer-state']);
    const i = good();
    i.peer!.items = [];
    expect(rules(checkFinal(i, log()))).toEqual(['peer-state']);
  });
});

describe('answer checks', () => {
  const op = (o: Partial<Operation>): Operation => ({ op: 'c0-1', client: 0, slot: 0, replica: 0, kind: 'get', call: 0, ret: 1, status: 200, ...o });
  const slots = [{ ids: [A, B] }];

  test('answers the log explains pass', () => {
    const ops = [
      op({ op: 'c0-1', kind: 'create', target: A, call: 0, ret: 10, status: 201, entry: doc(A, 1, 1, 'c0-1') }),
      op({ op: 'c0-2', kind: 'query', name: NAME, call: 20, ret: 30, items: [doc(A, 3, 2, 'c1-1')], catalogRevision: 4 }),
      op({ op: 'c0-3', kind: 'get', target: B, status: 404 }),
    ];
    expect(checkAnswers(ops, log(), slots, [])).toEqual([]);
  });

  test('acked-in-log: a write answered with a state the log does not hold at that revision', () => {
    const ops = [op({ kind: 'update', target: A, status: 200, entry: doc(A, 2, 3, 'c1-1') })];
    expect(rules(checkAnswers(ops, log(), slots, []))).toEqual(['acked-in-log']);
  });

  test('query-stale and query-in-log: an answer older than its X-Catalog-Revision, or missing an entry', () => {
    const older = [op({ kind: 'query', name: NAME, items: [doc(A, 1, 1, 'c0-1')], catalogRevision: 3 })];
    expect(rules(checkAnswers(older, log(), slots, []))).toEqual(['query-stale']);
    const missing = [op({ kind: 'query', name: NAME, items: [], catalogRevision: 7 })];
    expect(rules(checkAnswers(missing, log(), slots, []))).toEqual(['query-stale']);
    const made = [op({ kind: 'query', name: NAME, items: [doc(B, 7, 5, 'c0-2')], catalogRevision: 7 })];
    expect(rules(checkAnswers(made, log(), slots, []))).toEqual(['query-in-log']);
  });

  test('read-your-writes: a query on a replica that does not show a write that replica acknowledged before it began', () => {
    const ops = [
      op({ op: 'c0-2', kind: 'update', target: B, replica: 1, call: 0, ret: 10, entry: doc(B, 7, 2, 'c0-2') }),
      op({ op: 'c1-5', kind: 'query', name: NAME, replica: 1, call: 11, ret: 12, items: [doc(B, 6, 1, 'c2-1')] }),
    ];
    expect(rules(checkAnswers(ops, log(), slots, []))).toEqual(['read-your-writes']);
    // Not across a restart of that replica, nor on another replica.
    expect(checkAnswers(ops, log(), slots, [{ kind: 'kill', target: 1, at: 10.5, end: 10.8, detail: '' }])).toEqual([]);
    expect(checkAnswers([ops[0]!, { ...ops[1]!, replica: 2 }], log(), slots, [])).toEqual([]);
    // Absent, once deleted after the write: fine; absent while it lives: not.
    const deleted = [op({ op: 'c1-1', kind: 'update', target: A, replica: 1, call: 0, ret: 10, entry: doc(A, 2, 2, 'c1-1') }), op({ op: 'c1-6', kind: 'query', name: NAME, replica: 1, call: 11, ret: 12, items: [] })];
    expect(checkAnswers(deleted, log(), slots, [])).toEqual([]);
    expect(rules(checkAnswers([ops[0]!, { ...ops[1]!, items: [] }], log(), slots, []))).toEqual(['read-your-writes']);
  });

  test('get-stale: a GET from a replica\'s view (X-Catalog-Revision R) answering other than the entry\'s state at R; read-your-writes holds for it too', () => {
    // The log: A at 3 until its delete at 5; B from 6.
    const fine = [op({ kind: 'get', target: A, catalogRevision: 4, entry: doc(A, 3, 2, 'c1-1') }), op({ kind: 'get', target: A, status: 404, catalogRevision: 5 }), op({ kind: 'get', target: B, status: 404, catalogRevision: 5 })];
    expect(checkAnswers(fine, log(), slots, [])).toEqual([]);
    expect(rules(checkAnswers([op({ kind: 'get', target: A, catalogRevision: 4, entry: doc(A, 1, 1, 'c0-1') })], log(), slots, []))).toEqual(['get-stale']);
    expect(rules(checkAnswers([op({ kind: 'get', target: A, status: 404, catalogRevision: 3 })], log(), slots, []))).toEqual(['get-stale']);
    expect(rules(checkAnswers([op({ kind: 'get', target: B, catalogRevision: 5, entry: doc(B, 6, 1, 'c2-1') })], log(), slots, []))).toEqual(['get-stale']);
    // A view behind a write its own replica acknowledged.
    const own = [
      op({ op: 'c0-2', kind: 'update', target: B, replica: 1, call: 0, ret: 10, entry: doc(B, 7, 2, 'c0-2') }),
      op({ op: 'c1-5', kind: 'get', target: B, replica: 1, call: 11, ret: 12, catalogRevision: 6, entry: doc(B, 6, 1, 'c2-1') }),
    ];
    expect(rules(checkAnswers(own, log(), slots, []))).toEqual(['read-your-writes']);
    expect(checkAnswers([own[0]!, { ...own[1]!, replica: 2 }], log(), slots, [])).toEqual([]);
  });

  test('unexpected-answer: a status the traffic never provokes', () => {
    expect(rules(checkAnswers([op({ status: 400 })], log(), slots, []))).toEqual(['unexpected-answer']);
  });
});

describe('linearizability (porcupine, tools/robustness)', () => {
  const meta: Meta = { engine: 'test', mode: 'quick', startedAt: '', durationMs: 0, slots: [{ name: NAME, ids: [A, B] }], tags: ['t0'], clients: 2, replicas: 1, reservationWindowUs: 1000 };
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'robustness-lin-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const op = (o: Partial<Operation>): Operation => ({ op: 'x', client: 0, slot: 0, replica: 0, kind: 'get', call: 0, ret: 1, status: 200, ...o });
  const history = () => [
    op({ op: 'c0-1', kind: 'create', target: A, marker: 'c0-1', tags: [], call: 0, ret: 10, status: 201, entry: doc(A, 1, 1, 'c0-1') }),
    op({ op: 'c1-1', kind: 'update', target: A, marker: 'c1-1', call: 20, ret: 30, entry: doc(A, 2, 2, 'c1-1') }),
    op({ op: 'c0-2', kind: 'get', target: A, call: 40, ret: 50, entry: doc(A, 3, 2, 'c1-1') }),
    op({ op: 'c1-2', kind: 'create', target: B, marker: 'c1-2', tags: [], call: 60, ret: 70, status: 409 }),
  ];

  test('a linearizable history passes; an answer lost in a reset counts as what the log shows', () => {
    expect(checkLinearizability(dir, history(), meta, log(), []).result.linearizable).toBe(true);
    const lost = history();
    lost[1] = { ...lost[1]!, ret: null, status: 0, error: 'ECONNRESET', entry: undefined };
    expect(checkLinearizability(dir, lost, meta, log(), []).result.linearizable).toBe(true);
  }, 180_000);

  test('a stale read after an acknowledged write, or a refusal of a free name outside a fault window, is not linearizable', () => {
    const stale = [...history(), op({ op: 'c0-3', kind: 'get', target: A, call: 80, ret: 90, entry: doc(A, 1, 1, 'c0-1') })];
    const r = checkLinearizability(dir, stale, meta, log(), []);
    expect(r.result.linearizable).toBe(false);
    expect(r.violations[0]).toMatchObject({ rule: 'linearizable' });
    // The same answer from a replica's view (X-Catalog-Revision) is a view read: answers.ts checks it, not porcupine.
    const fromView = [...history(), op({ op: 'c0-3', kind: 'get', target: A, call: 80, ret: 90, entry: doc(A, 1, 1, 'c0-1'), catalogRevision: 1 })];
    expect(checkLinearizability(dir, fromView, meta, log(), []).result.linearizable).toBe(true);
    const refused = [...history().slice(0, 3), op({ op: 'c0-4', kind: 'delete', target: A, call: 80, ret: 90, status: 204 }), op({ op: 'c1-3', kind: 'create', target: B, marker: 'c1-3', tags: [], call: 100, ret: 110, status: 409 })];
    expect(checkLinearizability(dir, refused, meta, log(), []).result.linearizable).toBe(false);
    // A fault that hit a replica while a write of the name was under way there: its reservation may be left.
    const kill = { kind: 'kill' as const, target: 0, at: 85, end: 96, detail: '' };
    expect(checkLinearizability(dir, refused, meta, log(), [kill]).result.linearizable).toBe(true);
    // A fault on another replica: no.
    expect(checkLinearizability(dir, refused, meta, log(), [{ ...kill, target: 2 }]).result.linearizable).toBe(false);
    // A create racing for the name at the same time (which then failed): its reservation refused this one.
    const raced = [...refused, op({ op: 'c2-9', kind: 'create', target: A, marker: 'c2-9', tags: [], call: 101, ret: null, status: 0, error: 'ECONNRESET' })];
    expect(checkLinearizability(dir, raced, meta, log(), []).result.linearizable).toBe(true);
  }, 180_000);
});
