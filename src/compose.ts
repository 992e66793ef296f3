/**
 * The composition root: from config, a database handle and a logger to the running pieces. main.ts and
 * the tests both build the service through here, so tests exercise the production wiring.
 */
import type { Db } from 'mongodb';
import type { Config } from './config';
import { TOKEN_RETENTION_MS } from './db/atomic';
import { Federation } from './federation';
import { createHealthService } from './health';
import { buildApp, TRUST_ALL_PROXIES_WARNING } from './http/app';
import { createAccess } from './http/auth';
import { createRateLimits } from './http/rate-limit';
import { healthRoutes } from './http/routes/health';
import { inventoryRoutes } from './http/routes/inventory';
import { createInventory } from './inventory';
import { LiveVerifier } from './health/verify';
import { metricsRoutes, publicOpsRoutes } from './http/routes/ops';
import { peersRoutes } from './http/routes/peers';
import { pullConfigRoutes } from './http/routes/pull-config';
import { pullCredentialsRoutes } from './http/routes/pull-credentials';
import { resolveRoutes } from './http/routes/resolve';
import { statusPageRoutes } from './http/routes/status-page';
import { whoamiRoutes } from './http/routes/whoami';
import { Lifecycle } from './lifecycle';
import type { Logger } from './logger';
import { buildOpenApi } from './openapi';
import pkg from '../package.json';
import { createHttpClient, createProber, createStorageCrawler } from './probe';
import { createCatalog } from './registries/catalog';
import { CatalogFeed } from './feed/reader';
import { viewReads } from './feed/reads';
import { yieldingFilter } from './view/filter';
import { feedResolver } from './feed/resolver';
import { ChangeStreams } from './http/routes/change-streams';
import { changesRoutes } from './http/routes/changes';
import { webhookRoutes } from './http/routes/webhooks';
import { createWebhooks } from './events';
import { SORT_FIELDS } from './registries/query';
import { PrefixIndex } from './resolve';
import { PullConfig } from './nodes';
import { CatalogView } from './view/catalog-view';
import { recordWriteBatch } from './observability/metrics';
import { registryMetricsText } from './observability/registry-metrics';
import { BadEntries } from './registries/stored-shape';

export async function compose(config: Config, db: Db, logger: Logger) {
  const { cipher, repository, registries } = await createCatalog(config, db, logger);
  // What FerretDB v1 cannot run exactly ($elemMatch) is evaluated in the service, as the view evaluates it.
  repository.exactFilter = (filter) => yieldingFilter(filter, config.QUERY_TIMEOUT_MS);
  // Claims of src/db/atomic.ts (sweep and compaction turns) are kept long after use, then dropped here (no TTL index on FerretDB v1).
  const pruneTokens = setInterval(() => void repository.claims.prune(TOKEN_RETENTION_MS).catch(() => undefined), 5 * 60_000);
  pruneTokens.unref();
  // Stop hooks run after requests drained, before the database closes (the scheduler registers here too).
  const lifecycle = new Lifecycle();
  lifecycle.onStop('claim pruning', () => clearInterval(pruneTokens));
  // How many entry changes each grouped write carries (registry_db_write_batch_size).
  repository.writer.onBatch = recordWriteBatch;
  // The change feed: one reader of the change log per replica, feeding the in-memory view and every watcher.
  const view = new CatalogView([...SORT_FIELDS.values()].map((f) => f.dbField));
  const feed = new CatalogFeed(repository.writer, view, repository.claims, logger, {
    pollMs: config.FEED_POLL_MS,
    retentionMs: config.CHANGE_RETENTION_HOURS * 3_600_000,
    compactEveryMs: Math.min(60_000, config.FEED_COMPACT_AFTER_S * 1000),
  });
  if (config.QUERY_SOURCE === 'view') registries.fastReads = viewReads(feed, config.QUERY_TIMEOUT_MS);
  feed.start();
  // SSE watchers: one subscription, each change serialised once, a budget of unsent bytes for all streams.
  const streams = new ChangeStreams(feed, { budgetBytes: config.FEED_STREAM_BUDGET_BYTES, bookmarkSeconds: config.FEED_BOOKMARK_S });
  lifecycle.onBeginStop(() => feed.closeWatchers());
  const access = createAccess(config.API_KEYS, { hosts: config.PROTECTED_MODE_HOSTS });
  const rateLimits = await createRateLimits(config, db, logger);
  lifecycle.onStop('rate limits', () => rateLimits.shutdown());
  // Probes never reach this service's own port or its database's on a local address (egress.ts); main adds
  // the listening port once known (PORT=0).
  const localPorts = new Set<number>(config.PORT > 0 ? [config.PORT] : []);
  for (const h of db.client.options.hosts) if (h.port) localPorts.add(h.port);
  const prober = createProber(config, createHttpClient(config, { localPorts }));
  const crawler = createStorageCrawler(config, { client: createHttpClient(config, { localPorts }) });
  // The resolver's prefix index, kept current by the change feed (loaded with the view; 503 until then).
  const resolver = new PrefixIndex();
  // Malformed stored entries are left out of the per-entry answers (/resolve, /metrics), each logged once.
  const badEntries = new BadEntries(logger);
  feedResolver(feed, resolver, badEntries);
  // The inventory (SPEC 19): written by storage refreshes, held in memory for /resolve and /images, fed like the view.
  const inventory = await createInventory({ config, db, feed, resolver, entries: repository.writer, logger });
  const health = await createHealthService({ config, db, logger, cipher, prober, crawler, entries: repository.writer, inventory: inventory.repository });
  lifecycle.onStop('scheduler', () => health.scheduler.stop());
  lifecycle.onStop('inventory', () => inventory.stop());
  // /resolve?verify=true: live manifest checks through a client of their own (egress policy, timeouts).
  const verifyClient = createHttpClient(config, { localPorts });
  const stored = (id: string) => view.get(id)?.doc;
  const verifier = new LiveVerifier(verifyClient, cipher, stored, { concurrency: config.VERIFY_CONCURRENCY, timeoutMs: config.PROBE_TIMEOUT_MS });
  lifecycle.onStop('probe clients', () => Promise.all([prober.close(), crawler.close(), verifyClient.close()]));
  // Webhooks: fed by the change feed; deliveries go through the probe HTTP client (egress policy, timeouts).
  const webhookClient = createHttpClient(config, { localPorts });
  const webhooks = await createWebhooks({ config, db, cipher, feed, client: webhookClient, logger });
  lifecycle.onStop('webhooks', async () => {
    await webhooks.deliverer.stop();
    await webhookClient.close();
  });
  // Federation (SPEC 15): one follower per peer, the peer's lease deciding which replica follows it. Peer
  // URLs go through a client with the same egress policy as probes.
  const peerClient = createHttpClient(config, { localPorts });
  const federation = new Federation(config, db, repository.writer, peerClient, logger);
  await federation.start();
  lifecycle.onStop('federation', () => federation.stop().then(() => peerClient.close()));
  // The feed stops after everything that writes through it (a write waits for the feed to check its name).
  lifecycle.onStop('change feed', () => feed.stop());
  // Pull configuration for nodes (SPEC 18): rendered from the same index and the view's documents.
  const pull = new PullConfig(resolver, stored);
  const indexReadiness = { isReady: () => feed.ready, caughtUp: () => feed.caughtUp() };
  const app = buildApp({
    logger,
    registries,
    bodyLimit: config.BODY_LIMIT_BYTES,
    trustProxy: config.TRUST_PROXY,
    access,
    rateLimits,
    publicRoutes: [publicOpsRoutes({ db, openapi: buildOpenApi(pkg.version), isStopping: () => lifecycle.stopping }), statusPageRoutes()],
    extraRoutes: [
      changesRoutes({ feed, can: access.can, streams }),
      // Per-registry series from the view, after this replica's acknowledged writes (read-your-writes, like queries).
      metricsRoutes(access.can, async () => {
        await feed.caughtUp();
        return registryMetricsText(view, config.METRICS_MAX_REGISTRIES, badEntries);
      }),
      webhookRoutes({ webhooks: webhooks.service, can: access.can, bodyLimit: config.BODY_LIMIT_BYTES }),
      healthRoutes({ registries, checker: health.checker, reporter: health.reporter, history: health.history, can: access.can }),
      whoamiRoutes(access),
      peersRoutes({ federation, can: access.can }),
      resolveRoutes({ resolver, can: access.can, bodyLimit: config.BODY_LIMIT_BYTES, maxAnswerBytes: config.RESOLVE_MAX_ANSWER_BYTES, inventory: inventory.index, verifier, verifyLimit: rateLimits.probe, ...indexReadiness }),
      inventoryRoutes({ registries, repository: inventory.repository, refresher: health.refresher, resolver, inventories: inventory.index, can: access.can, logger, probeLimit: rateLimits.probe, ...indexReadiness }),
      pullConfigRoutes({ pull, can: access.can, revision: () => view.revision, ...indexReadiness }),
      pullCredentialsRoutes({ resolver, stored, cipher, logger, can: access.can, bodyLimit: config.BODY_LIMIT_BYTES, ...indexReadiness }),
    ],
  });
  if (config.TRUST_PROXY === true) logger.warn(TRUST_ALL_PROXIES_WARNING);
  const protectPort = (port: number) => void localPorts.add(port);
  return { app, webhooks, repository, registries, cipher, access, lifecycle, health, inventory, feed, streams, resolver, federation, protectPort };
}
