/**
 * `npm run test:postgres`, CI's second leg (SPEC section 20): the tests that concurrency bugs would fail, run on
 * FerretDB v1 with its postgresql handler on a throw-away PostgreSQL 15 (TEST_ENGINE=postgres; writers truly
 * concurrent, where SQLite's single writer serializes them): the change feed under faults, replicas, the view's
 * differential test, concurrent writes and name races, upserts that collide, batches of sweep results cut off by the database, and the _id
 * index tools/ferretdb adds there. The
 * reliability suite's global setup (a private build of the service for the processes it starts), on that engine.
 */
process.env.TEST_ENGINE = 'postgres';

module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: [
    '**/test/reliability/feed.reliability.ts',
    '**/test/reliability/replicas.reliability.ts',
    '**/test/view/differential.test.ts',
    '**/test/registries/concurrency.test.ts',
    '**/test/registries/name-race.test.ts',
    '**/test/db/id-lookup-index.test.ts',
    '**/test/db/changelog.test.ts',
    '**/test/db/atomic.test.ts',
    '**/test/health/group-commit.test.ts',
  ],
  globalSetup: '<rootDir>/test/reliability/global-setup.ts',
  globalTeardown: '<rootDir>/test/reliability/global-teardown.ts',
  testTimeout: 120000,
  // One file at a time: the feed and replicas tests each run several service processes, FerretDB and PostgreSQL;
  // side by side on two cores they starved each other past the clients' 15 s timeouts.
  maxWorkers: 1,
  // JEST_JSON_FILE set (.ci/run): the results also go there as `jest --json` writes them.
  reporters: ['default', '<rootDir>/scripts/jest-json-reporter.js'],
};
