/**
 * `npm run robustness [-- --quick] [-- --engine sqlite|postgres] [-- --seconds N] [-- --keep]`: runs the robustness
 * scenario (scenario.ts) on each engine, checks every history (check/), writes robustness/results.json and
 * prints a one-line summary. A violation exits 1 and leaves the history behind (robustness/histories/...);
 * `npm run robustness -- --replay DIR` runs the checkers alone on a history left behind. See docs/robustness.md.
 */
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { checkHistory, type CheckReport } from './check';
import { engineMissing, EngineUnavailable, ENGINES, type Engine } from './engines';
import type { History } from './history';
import { killAll } from './processes';
import { PROFILES, runScenario } from './scenario';

const ROOT = path.resolve(__dirname, '..', '..');
/** A run (one engine) that is not over after this long is stopped: its processes killed, exit 2. */
const DEADLINE_MS = { quick: 8 * 60_000, full: 25 * 60_000 };
const OUT_DIR = path.join(ROOT, 'robustness');
/** The results (ROBUSTNESS_RESULTS_FILE: where CI's summary reads them, as JEST_JSON_FILE for jest). */
const RESULTS_FILE = process.env.ROBUSTNESS_RESULTS_FILE ?? path.join(OUT_DIR, 'results.json');
const SHOWN_VIOLATIONS = 10;

interface Args {
  mode: 'quick' | 'full';
  engines: Engine[];
  replay?: string;
  keep: boolean;
  /** Seconds of traffic, instead of the mode's. */
  seconds?: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { mode: 'full', engines: [], keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') args.mode = 'quick';
    else if (a === '--keep') args.keep = true;
    else if (a === '--replay') args.replay = argv[++i];
    else if (a === '--seconds') args.seconds = Number(argv[++i]);
    else if (a === '--engine') {
      const e = argv[++i] as Engine;
      if (!ENGINES.includes(e)) throw new EngineUnavailable(`unknown engine "${e}": use ${ENGINES.join(' or ')}`);
      args.engines.push(e);
    } else throw new Error(`unknown argument ${a} (use --quick, --engine sqlite|postgres, --seconds N, --keep, --replay DIR)`);
  }
  if (args.engines.length === 0) args.engines = ENGINES.filter((e) => engineMissing(e) === undefined);
  for (const e of args.engines) {
    const missing = engineMissing(e);
    if (missing) throw new EngineUnavailable(missing);
  }
  return args;
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

function tally<T>(xs: T[], key: (x: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[key(x)] = (out[key(x)] ?? 0) + 1;
  return out;
}

function summaryLine(engine: string, r: CheckReport, h: History, ms: number): string {
  const others = r.other_violations > 0 ? `, ${r.other_violations} other violations` : '';
  return `${engine}: ${r.operations} operations, ${h.faults.length} faults, ${r.histories_checked} histories checked, ${r.linearizable ? 'linearizable' : 'NOT linearizable'}, ${r.watch_violations} watch violations${others} (${duration(ms)})`;
}

function printViolations(r: CheckReport): void {
  for (const v of r.violations.slice(0, SHOWN_VIOLATIONS)) process.stdout.write(`  [${v.rule}] ${v.where}: ${v.detail}\n`);
  if (r.violations.length > SHOWN_VIOLATIONS) process.stdout.write(`  ... and ${r.violations.length - SHOWN_VIOLATIONS} more\n`);
}

const failed = (r: CheckReport) => !r.linearizable || r.violations.length > 0;

function replay(dir: string): number {
  const r = checkHistory(dir);
  writeFileSync(path.join(dir, 'report.json'), JSON.stringify(r, null, 2) + '\n');
  printViolations(r);
  process.stdout.write(`robustness (replay of ${dir}): ${r.operations} operations, ${r.histories_checked} histories checked, ${r.linearizable ? 'linearizable' : 'NOT linearizable'}, ${r.watch_violations} watch violations, ${r.other_violations} other violations\n`);
  return failed(r) ? 1 : 0;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.replay) return replay(path.resolve(args.replay));
  // A run that ends early leaves no results behind it (CI reads this file).
  rmSync(RESULTS_FILE, { force: true });
  const runs = [];
  const lines: string[] = [];
  const explained: Array<{ engine: string; rule: string; where: string; detail: string }> = [];
  let anyFailed = false;
  for (const engine of args.engines) {
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const dir = path.join(OUT_DIR, 'histories', `${engine}-${stamp}`);
    process.stdout.write(`robustness: ${engine}, ${args.mode} (history in ${path.relative(ROOT, dir)})\n`);
    const profile = args.seconds ? { ...PROFILES[args.mode], trafficMs: args.seconds * 1000 } : PROFILES[args.mode];
    const deadline = setTimeout(() => abort(`the ${engine} run took over ${DEADLINE_MS[args.mode] / 60_000} minutes`), DEADLINE_MS[args.mode] + profile.trafficMs - PROFILES[args.mode].trafficMs);
    const { history, durationMs } = await runScenario(engine, profile, dir);
    const report = checkHistory(dir, history);
    clearTimeout(deadline);
    const bad = failed(report);
    anyFailed ||= bad;
    printViolations(report);
    explained.push(...report.violations.slice(0, SHOWN_VIOLATIONS).map((v) => ({ engine, ...v })));
    lines.push(summaryLine(engine, report, history, durationMs));
    runs.push({
      engine,
      duration_s: Math.round(durationMs / 1000),
      operations: report.operations,
      operations_by_kind: tally(history.operations, (o) => o.kind),
      outcomes: tally(history.operations, (o) => (o.status === 0 ? (o.error ?? 'no answer') : String(o.status))),
      faults_injected: history.faults.length,
      faults: tally(history.faults, (f) => f.kind),
      histories_checked: report.histories_checked,
      linearizable: report.linearizable,
      unknown_outcomes: report.unknown_outcomes,
      partitions: report.linearizability.partitions.map((p) => ({ name: p.name, operations: p.operations, result: p.result, duration_ms: p.duration_ms })),
      watch_violations: report.watch_violations,
      other_violations: report.other_violations,
      changes_consumed: report.changes_consumed,
      positions_checked: report.positions_checked,
      log_revisions: history.log.length,
      history: bad || args.keep ? path.relative(ROOT, dir) : null,
    });
    if (!bad && !args.keep) rmSync(dir, { recursive: true, force: true });
  }
  const all = runs.reduce(
    (s, r) => ({ ops: s.ops + r.operations, faults: s.faults + r.faults_injected, histories: s.histories + r.histories_checked, watch: s.watch + r.watch_violations }),
    { ops: 0, faults: 0, histories: 0, watch: 0 },
  );
  const summary = `robustness ${args.mode}: ${lines.join('; ')}`;
  const results = {
    engines: args.engines,
    mode: args.mode,
    histories_checked: all.histories,
    operations: all.ops,
    faults_injected: all.faults,
    linearizable: runs.every((r) => r.linearizable),
    watch_violations: all.watch,
    violations: explained.slice(0, SHOWN_VIOLATIONS),
    runs,
    summary,
  };
  writeFileSync(RESULTS_FILE, JSON.stringify(results, null, 2) + '\n');
  process.stdout.write(summary + '\n');
  return anyFailed ? 1 : 0;
}

/** Ends the run at once: no process left behind, exit 2. */
function abort(why: string): void {
  process.stderr.write(`robustness: ${why}; stopping\n`);
  killAll();
  process.exit(2);
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => abort(`${sig} received`));

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`robustness: ${e instanceof EngineUnavailable ? e.message : (e.stack ?? e.message)}\n`);
    process.exit(2);
  },
);
