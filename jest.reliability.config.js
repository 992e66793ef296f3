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
};
