/**
 * The composition root: from config, a database handle and a logger to the running pieces. main.ts and
 * the tests both build the service through here, so tests exercise the production wiring.
 */
import type { Db } from 'mongodb';
import type { Config } from './config';
import { TOKEN_RETENTION_MS } from './db/atomic';
import { createHealthService } from './health';
import { buildApp } from './http/app';
import { createAccess } from './http/auth';
import { createRateLimits } from './http/rate-limit';
import { healthRoutes } from './http/routes/health';
import { metricsRoutes, publicOpsRoutes } from './http/routes/ops';
import { Lifecycle } from './lifecycle';
import type { Logger } from './logger';
import { buildOpenApi } from './openapi';
import pkg from '../package.json';
import { createHttpClient, createProber, createStorageCrawler } from './probe';
import { createCatalog } from './registries/catalog';

export async function compose(config: Config, db: Db, logger: Logger) {
  const { cipher, repository, registries } = await createCatalog(config, db, logger);
  // Write tokens of src/db/atomic.ts are kept long after use, then dropped here (no TTL index on FerretDB v1).
  const pruneTokens = setInterval(() => void repository.claims.prune(TOKEN_RETENTION_MS).catch(() => undefined), 5 * 60_000);
  pruneTokens.unref();
  // Stop hooks run after requests drained, before the database closes (the scheduler registers here too).
  const lifecycle = new Lifecycle();
  lifecycle.onStop('write-token pruning', () => clearInterval(pruneTokens));
  const access = createAccess(config.API_KEYS);
  const rateLimits = await createRateLimits(config, db, logger);
  lifecycle.onStop('rate limits', () => rateLimits.shutdown());
  // Probes never reach this service's own port or its database's on a local address (egress.ts); main adds
  // the listening port once known (PORT=0).
  const localPorts = new Set<number>(config.PORT > 0 ? [config.PORT] : []);
  for (const h of db.client.options.hosts) if (h.port) localPorts.add(h.port);
  const prober = createProber(config, createHttpClient(config, { localPorts }));
  const crawler = createStorageCrawler(config, { client: createHttpClient(config, { localPorts }) });
  const health = await createHealthService({ config, db, logger, cipher, prober, crawler, claims: repository.claims });
  lifecycle.onStop('scheduler', () => health.scheduler.stop());
  lifecycle.onStop('probe clients', () => Promise.all([prober.close(), crawler.close()]));
  const app = buildApp({
    logger,
    registries,
    bodyLimit: config.BODY_LIMIT_BYTES,
    trustProxy: config.TRUST_PROXY,
    access,
    rateLimits,
    publicRoutes: [publicOpsRoutes({ db, openapi: buildOpenApi(pkg.version), isStopping: () => lifecycle.stopping })],
    extraRoutes: [metricsRoutes(access.can), healthRoutes({ registries, checker: health.checker, reporter: health.reporter, can: access.can })],
  });
  const protectPort = (port: number) => void localPorts.add(port);
  return { app, repository, registries, cipher, access, lifecycle, health, protectPort };
}
