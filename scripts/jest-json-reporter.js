/**
 * Jest reporter (listed after `default` in jest.config.js and jest.reliability.config.js): when JEST_JSON_FILE
 * is set, writes the run's results there in the format of `jest --json` (what `--outputFile` writes). .ci/run
 * sets it for both test commands and reads the files back (scripts/ci-summary.js). Unset: it does nothing.
 */
const { mkdirSync, renameSync, writeFileSync } = require('node:fs');
const path = require('node:path');
const { formatTestResults } = require('@jest/test-result');

class JsonFileReporter {
  onRunComplete(_contexts, results) {
    const file = process.env.JEST_JSON_FILE;
    if (!file) return;
    mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    writeFileSync(`${file}.tmp`, JSON.stringify(formatTestResults(results)));
    renameSync(`${file}.tmp`, file);
  }
}

module.exports = JsonFileReporter;
