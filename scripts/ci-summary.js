#!/usr/bin/env node
/**
 * .ci/run's last step: `node scripts/ci-summary.js LABEL STATUS FILE [LABEL STATUS FILE]...`, one triple per jest
 * run (its exit status and its `jest --json` results file) or robustness run (`npm run robustness`'s results: each
 * engine's checked history counts as one test, passed when linearizable with no violation). Writes one line per run to stderr, then the sum as
 * the last line on stdout, alone on its line: `N passed, N failed`. Exits 1 when anything failed.
 * Failed counts failed tests plus suites that could not run (a syntax error, a failing import); a run that exited
 * non-zero with neither (no results file: the build, the type check or the global setup failed; or jest failed
 * after its tests) counts as one failure, so the line never says `0 failed` for a failing run.
 */
const { readFileSync } = require('node:fs');

/** A robustness run's engines: one test each. */
function robustnessCounts(runs) {
  const ok = runs.filter((r) => r.linearizable && r.watch_violations === 0 && r.other_violations === 0).length;
  return { passed: ok, failed: runs.length - ok };
}

function summarize(label, status, file) {
  let results;
  try {
    results = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    results = undefined;
  }
  const counts = !results ? { passed: 0, failed: 0 } : Array.isArray(results.runs) ? robustnessCounts(results.runs) : { passed: results.numPassedTests, failed: results.numFailedTests + results.numRuntimeErrorTestSuites };
  const passed = counts.passed;
  let failed = counts.failed;
  let note = '';
  if (!results) note = ` (no results: ${file} was not written)`;
  if (status !== 0 && failed === 0) {
    failed = 1;
    note += ` (exit status ${status}, counted as 1 failure)`;
  }
  process.stderr.write(`${label}: ${passed} passed, ${failed} failed${note}\n`);
  return { passed, failed };
}

const args = process.argv.slice(2);
if (args.length === 0 || args.length % 3 !== 0) {
  process.stderr.write('usage: ci-summary.js LABEL STATUS FILE [LABEL STATUS FILE]...\n');
  process.exit(2);
}
let passed = 0;
let failed = 0;
for (let i = 0; i < args.length; i += 3) {
  const run = summarize(args[i], Number(args[i + 1]), args[i + 2]);
  passed += run.passed;
  failed += run.failed;
}
process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
process.exit(failed > 0 ? 1 : 0);
