/** Jest runs against one throw-away database server per run (test/setup/global-setup.ts). */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  globalSetup: '<rootDir>/test/setup/global-setup.ts',
  globalTeardown: '<rootDir>/test/setup/global-teardown.ts',
  testTimeout: 60000,
  maxWorkers: 2,
  // JEST_JSON_FILE set (.ci/run): the results also go there as `jest --json` writes them.
  reporters: ['default', '<rootDir>/scripts/jest-json-reporter.js'],
};
