/**
 * Linearizability of the client operations, per slot (a name shared by a few entry ids), checked by
 * porcupine against the model in tools/robustness/model.go. This module turns the recorded operations into
 * porcupine's input, builds the Go checker (cached) and runs it.
 *
 * Outcomes: 2xx is the answer; 404, 409 and 412 are refusals the model explains; a refused connection
 * means the request was never sent (dropped). Anything else (no answer, a timeout, a reset, a 5xx) is
 * unknown: the write may or may not have happened. As etcd's robustness tests do, the log decides where it
 * can: every create and update writes a marker of its own, so one whose marker is not in the log never
 * happened (dropped), and one whose marker is there happened with the state the log shows. What stays unknown
 * (a delete, an update that only adds a tag) is given a return time after every other operation: porcupine
 * may then place it anywhere after its call, including "never".
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Fault, LogRecord, Meta, Operation } from '../history';
import type { LogIndex, Violation } from './log';

const ROOT = path.resolve(__dirname, '..', '..', ...(path.basename(path.resolve(__dirname, '..', '..')) === 'dist' ? ['..'] : []));
const TOOL_DIR = path.join(ROOT, 'tools', 'robustness');
const BINARY = path.join(ROOT, 'dist', 'tools', 'robustness-check');

interface ModelInput {
  kind: 'create' | 'update' | 'delete' | 'get';
  id: number;
  if_match?: number;
  marker?: string;
  add_tags?: number;
  tags?: number;
  may_refuse?: boolean;
  op: string;
}

interface ModelOutput {
  status: 'ok' | 'notfound' | 'conflict' | 'stale' | 'unknown';
  version?: number;
  tags?: number;
  marker?: string;
}

export interface PorcupineOp {
  client: number;
  call: number;
  return: number;
  input: ModelInput;
  output: ModelOutput;
}

export interface PorcupineInput {
  partitions: Array<{ name: string; operations: PorcupineOp[] }>;
}

/** What became of the operations without a definite answer. */
export interface Unknowns {
  /** Writes whose marker the log holds: they happened, with the state the log shows. */
  happened: number;
  /** Writes whose marker the log does not hold, and reads without an answer: left out. */
  dropped: number;
  /** Left to porcupine (deletes, updates that only add a tag). */
  open: number;
}

export interface LinearizabilityResult {
  linearizable: boolean;
  partitions: Array<{ name: string; operations: number; result: 'Ok' | 'Illegal' | 'Unknown'; visualization?: string; explanation?: string; duration_ms: number }>;
}

/** How an operation ended, for the model. */
export function outcomeOf(o: Operation): 'ok' | 'notfound' | 'conflict' | 'stale' | 'unsent' | 'unknown' | 'other' {
  if (o.status >= 200 && o.status < 300) return 'ok';
  if (o.status === 404) return 'notfound';
  if (o.status === 409) return 'conflict';
  if (o.status === 412) return 'stale';
  if (o.status === 0 && o.error === 'ECONNREFUSED') return 'unsent';
  if (o.status === 0 || o.status >= 500) return 'unknown';
  return 'other';
}

const mask = (tags: string[] | undefined, all: string[]) => (tags ?? []).reduce((m, t) => m | (1 << all.indexOf(t)), 0);

/** The change that a write carrying `marker` made to `key`: the first record of the key with it. */
function recordOf(log: LogIndex, key: string, marker: string): LogRecord | undefined {
  return log.history(key).find((r) => r.op === 'upsert' && r.doc?.marker === marker);
}

/**
 * Whether a 409 to create `c` on a free name is explained by a name reservation the model does not see:
 * another create or a delete of the slot was running at the same time (of writers racing for a name exactly
 * one reserves it, and the others are refused even if that one fails afterwards; a delete gives the name up
 * after its change is in the log), or a create or delete of the slot was under way on a replica when a fault
 * hit it (its reservation stays until stale, 30 s), and `c` began within `windowUs` after that fault.
 */
function mayBeRefused(c: Operation, slotOps: Operation[], faults: Fault[], windowUs: number): boolean {
  const end = (o: Operation) => o.ret ?? Infinity;
  const names = slotOps.filter((o) => o !== c && (o.kind === 'create' || o.kind === 'delete'));
  if (names.some((o) => o.call <= end(c) && end(o) >= c.call)) return true;
  return faults.some(
    (f) =>
      c.call >= f.at &&
      c.call <= f.end + windowUs &&
      names.some((o) => (f.target === -1 || f.target === o.replica) && o.call <= f.end && end(o) >= f.at),
  );
}

/** The model's input and output for one operation, or undefined when it is left out (a read without an answer, a request never sent). */
function toModel(o: Operation, slotOps: Operation[], meta: Meta, log: LogIndex, faults: Fault[], unknowns: Unknowns): { input: ModelInput; output: ModelOutput; unknown: boolean } | undefined {
  // Queries, and GETs served from a replica's view (X-Catalog-Revision), read a replica's view as of a
  // revision: not linearizable by design (docs/queries.md); answers.ts checks them against the log.
  if (o.kind === 'query' || (o.kind === 'get' && o.catalogRevision !== undefined)) return undefined;
  const ids = meta.slots[o.slot]!.ids;
  const input: ModelInput = { kind: o.kind, id: ids.indexOf(o.target!), op: o.op };
  if (o.ifMatch !== undefined) input.if_match = o.ifMatch;
  if (o.marker) input.marker = o.marker;
  if (o.kind === 'update' && o.addTags?.length) input.add_tags = mask(o.addTags, meta.tags);
  if (o.kind === 'create') {
    input.tags = mask(o.tags, meta.tags);
    if (o.status === 409 && mayBeRefused(o, slotOps, faults, meta.reservationWindowUs)) input.may_refuse = true;
  }
  const outcome = outcomeOf(o);
  if (outcome === 'unsent' || outcome === 'other') return undefined;
  if (outcome === 'unknown') {
    const rec = o.marker ? recordOf(log, o.target!, o.marker) : undefined;
    if (o.kind === 'get' || (o.marker && !rec)) {
      unknowns.dropped++; // a read without an answer, or a write that never happened
      return undefined;
    }
    if (rec) {
      unknowns.happened++;
      return { input, output: { status: 'ok', version: rec.doc!.version, tags: mask(rec.doc!.tags, meta.tags), marker: rec.doc!.marker ?? '' }, unknown: true };
    }
    unknowns.open++;
    return { input, output: { status: 'unknown' }, unknown: true };
  }
  if (outcome !== 'ok') return { input, output: { status: outcome }, unknown: false };
  if (o.kind === 'delete') return { input, output: { status: 'ok' }, unknown: false };
  const e = o.entry!;
  return { input, output: { status: 'ok', version: e.version, tags: mask(e.tags, meta.tags), marker: e.marker ?? '' }, unknown: false };
}

/** Porcupine's input: one partition per slot. */
export function porcupineInput(ops: Operation[], meta: Meta, log: LogIndex, faults: Fault[], unknowns: Unknowns = { happened: 0, dropped: 0, open: 0 }): PorcupineInput {
  const last = ops.reduce((m, o) => Math.max(m, o.ret ?? o.call), 0);
  let pending = 0;
  const partitions = meta.slots.map((slot, i) => ({ name: `slot ${i} (${slot.name}: ${slot.ids.join(', ')})`, operations: [] as PorcupineOp[] }));
  const bySlot = meta.slots.map((_, i) => ops.filter((o) => o.slot === i));
  for (const o of ops) {
    const m = toModel(o, bySlot[o.slot]!, meta, log, faults, unknowns);
    if (!m) continue;
    const ret = m.unknown ? last + 1_000_000_000 + pending++ : o.ret!;
    partitions[o.slot]!.operations.push({ client: o.client, call: Math.round(o.call), return: Math.round(ret), input: m.input, output: m.output });
  }
  return { partitions };
}

function newestSource(): number {
  return readdirSync(TOOL_DIR)
    .filter((f) => f.endsWith('.go') || f === 'go.mod' || f === 'go.sum')
    .reduce((m, f) => Math.max(m, statSync(path.join(TOOL_DIR, f)).mtimeMs), 0);
}

/** Builds tools/robustness with the Go toolchain unless the binary is newer than its sources. */
export function buildChecker(): string {
  if (existsSync(BINARY) && statSync(BINARY).mtimeMs >= newestSource()) return BINARY;
  mkdirSync(path.dirname(BINARY), { recursive: true });
  execFileSync('go', ['build', '-o', BINARY, '.'], { cwd: TOOL_DIR, stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, GOFLAGS: '-mod=mod' } });
  return BINARY;
}

/** Writes porcupine.json into `dir`, runs the checker; answers its result and the violations it implies. */
export function checkLinearizability(dir: string, ops: Operation[], meta: Meta, log: LogIndex, faults: Fault[], timeoutS = 120): { result: LinearizabilityResult; violations: Violation[]; histories: number; unknowns: Unknowns } {
  const unknowns: Unknowns = { happened: 0, dropped: 0, open: 0 };
  const input = porcupineInput(ops, meta, log, faults, unknowns);
  const file = path.join(dir, 'porcupine.json');
  writeFileSync(file, JSON.stringify(input));
  const out = path.join(dir, 'linearizability.json');
  const run = spawnSync(buildChecker(), ['-in', file, '-out', out, '-viz', path.join(dir, 'visualization'), '-timeout', `${timeoutS}s`], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  if (run.status !== 0 && run.status !== 1) throw new Error(`the linearizability checker failed (${run.status ?? run.signal}): ${run.stderr}`);
  const result = JSON.parse(readFileSync(out, 'utf8')) as LinearizabilityResult;
  const violations: Violation[] = result.partitions
    .filter((p) => p.result !== 'Ok')
    .map((p) => ({
      rule: 'linearizable',
      where: 'operations',
      detail:
        p.result === 'Illegal'
          ? `${p.name}: the ${p.operations} operations are not linearizable: ${p.explanation ?? ''}${p.visualization ? ` (porcupine's visualization: ${p.visualization})` : ''}`
          : `${p.name}: porcupine could not decide within ${timeoutS} s`,
    }));
  return { result, violations, histories: input.partitions.filter((p) => p.operations.length > 0).length, unknowns };
}
