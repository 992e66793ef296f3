/**
 * `npm run test:reliability`: database outage, shutdown under load, hostile input, replicas (issue 6).
 * Real processes on loopback; kept out of `npm test` (jest.config.js) because it takes a few minutes.
 */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test/reliability'],
  testMatch: ['**/*.reliability.ts'],
  globalSetup: '<rootDir>/test/reliability/global-setup.ts',
  globalTeardown: '<rootDir>/test/reliability/global-teardown.ts',
  testTimeout: 120000,
  maxWorkers: 2,
  // JEST_JSON_FILE set (.ci/run): the results also go there as `jest --json` writes them.
  reporters: ['default', '<rootDir>/scripts/jest-json-reporter.js'],
};
