/**
 * CI says how many tests ran (issue 9 item 8): .ci/run ends with `N passed, N failed` on stdout, the sum of every
 * jest run of both legs (SQLite and PostgreSQL, issue 20) and the robustness quick run read from their JSON results (scripts/jest-json-reporter.js,
 * scripts/ci-summary.js), runs every test command even when an earlier one fails, and exits non-zero when anything failed.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');
const REPORTER = path.join(ROOT, 'scripts', 'jest-json-reporter.js');
const SUMMARY = path.join(ROOT, 'scripts', 'ci-summary.js');
let tmp: string;

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'registry-db-ci-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { env, cwd: ROOT, timeout: 120_000 }, (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

/** A real jest run of `files` with the project's reporter; returns its exit status and results file. */
async function jestRun(name: string, files: Record<string, string>): Promise<{ code: number; file: string }> {
  const dir = path.join(tmp, name);
  mkdirSync(dir);
  for (const [f, text] of Object.entries(files)) writeFileSync(path.join(dir, f), text);
  const config = JSON.stringify({ rootDir: dir, testMatch: ['**/*.test.js'], transform: {}, reporters: ['default', REPORTER] });
  const file = path.join(tmp, `${name}.json`);
  const { code } = await run(process.execPath, [require.resolve('jest/bin/jest'), '--config', config, '--ci'], { ...process.env, JEST_JSON_FILE: file });
  return { code, file };
}

const lastLine = (stdout: string): string => stdout.trimEnd().split('\n').pop()!;

test('When jest runs with the project reporter, then the summary adds passed and failed tests, suites that could not run and runs without results', async () => {
  const failing = await jestRun('failing', {
    'a.test.js': "test('one', () => expect(1).toBe(1));\ntest('two', () => expect(2).toBe(2));\ntest('three', () => expect(3).toBe(4));\n",
    'b.test.js': 'this is not javascript(\n',
  });
  expect(failing.code).not.toBe(0);
  const results = JSON.parse(readFileSync(failing.file, 'utf8'));
  expect(results).toMatchObject({ numPassedTests: 2, numFailedTests: 1, numRuntimeErrorTestSuites: 1, success: false });

  const passing = await jestRun('passing', { 'c.test.js': "test('four', () => expect(4).toBe(4));\n" });
  expect(passing.code).toBe(0);

  const all = await run(process.execPath, [SUMMARY, 'failing', String(failing.code), failing.file, 'passing', '0', passing.file, 'crashed', '2', path.join(tmp, 'never-written.json')]);
  expect(lastLine(all.stdout)).toBe('3 passed, 3 failed');
  expect(all.stdout).toMatch(/\n3 passed, 3 failed\n$/);
  expect(all.code).toBe(1);
  expect(all.stderr).toContain('crashed: 0 passed, 1 failed (no results');

  const green = await run(process.execPath, [SUMMARY, 'passing', '0', passing.file]);
  expect(lastLine(green.stdout)).toBe('1 passed, 0 failed');
  expect(green.code).toBe(0);
}, 120_000);

test('When .ci/run runs and the first test command fails, then it still runs the others (both legs), prints the sum of all as its last stdout line and exits non-zero', async () => {
  // A stand-in npm on PATH: logs its arguments and writes results where the reporter would.
  const bin = path.join(tmp, 'bin');
  mkdirSync(bin);
  const log = path.join(tmp, 'npm.log');
  writeFileSync(
    path.join(bin, 'npm'),
    [
      '#!/bin/sh',
      `echo "$*" >> '${log}'`,
      'case "$*" in',
      '  install) exit 0 ;;',
      `  test) echo '{"numPassedTests":30,"numFailedTests":2,"numRuntimeErrorTestSuites":0}' > "$JEST_JSON_FILE"; echo "jest noise" >&2; exit 1 ;;`,
      `  "run test:reliability") echo '{"numPassedTests":5,"numFailedTests":0,"numRuntimeErrorTestSuites":0}' > "$JEST_JSON_FILE"; echo "no trailing newline" | tr -d '\\n'; exit 0 ;;`,
      `  "run test:postgres") echo '{"numPassedTests":7,"numFailedTests":1,"numRuntimeErrorTestSuites":0}' > "$JEST_JSON_FILE"; exit 1 ;;`,
      `  "run robustness -- --quick") echo '{"runs":[{"linearizable":true,"watch_violations":0,"other_violations":0},{"linearizable":false,"watch_violations":0,"other_violations":0}]}' > "$ROBUSTNESS_RESULTS_FILE"; exit 1 ;;`,
      'esac',
      'exit 3',
    ].join('\n') + '\n',
  );
  chmodSync(path.join(bin, 'npm'), 0o755);
  const result = await run('bash', [path.join(ROOT, '.ci', 'run')], { ...process.env, PATH: `${bin}:${process.env.PATH}` });
  expect(readFileSync(log, 'utf8')).toBe('install\ntest\nrun test:reliability\nrun test:postgres\nrun robustness -- --quick\n');
  expect(lastLine(result.stdout)).toBe('43 passed, 4 failed');
  expect(result.stdout).toMatch(/\n43 passed, 4 failed\n$/);
  expect(result.code).not.toBe(0);
}, 60_000);
