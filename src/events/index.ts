/**
 * Events and webhooks (SPEC 16): catalog changes delivered to subscribed URLs, signed per Standard
 * Webhooks, durable and at-least-once in revision order per subscription. Fed by the change feed
 * (src/feed/reader.ts): the deliverer subscribes to it and reads its in-memory view; nothing here
 * polls the database for catalog changes. Pieces: events.ts (what a change means to a subscription),
 * signing.ts, store.ts (subscriptions, positions, per-entry state, delivery log), deliverer.ts (the
 * workers, one delivering replica per subscription through a lease: src/db/lease.ts), service.ts (the API's
 * domain side).
 */
import type { Db } from 'mongodb';
import type { Config } from '../config';
import { Leases } from '../db/lease';
import type { CatalogFeed } from '../feed/reader';
import type { Logger } from '../logger';
import type { HttpClient } from '../probe';
import type { CredentialCipher } from '../registries/credentials';
import { WebhookDeliverer } from './deliverer';
import { WebhookService } from './service';
import { WebhookStore } from './store';

export async function createWebhooks(deps: { config: Config; db: Db; cipher: CredentialCipher; feed: CatalogFeed; client: HttpClient; logger: Logger }) {
  const { config } = deps;
  const store = new WebhookStore(deps.db, deps.cipher);
  const leases = new Leases(deps.db, 'webhook', config.WEBHOOK_LEASE_MS);
  await Promise.all([store.ensureIndexes(), leases.ensureIndexes()]);
  const deliverer = new WebhookDeliverer(store, deps.feed, leases, deps.client, deps.logger, {
    timeoutMs: config.WEBHOOK_TIMEOUT_MS,
    retryMinMs: config.WEBHOOK_RETRY_MIN_MS,
    retryMaxMs: config.WEBHOOK_RETRY_MAX_MS,
    retryForMs: config.WEBHOOK_RETRY_FOR_S * 1000,
    concurrency: config.WEBHOOK_CONCURRENCY,
    leaseMs: config.WEBHOOK_LEASE_MS,
  });
  deliverer.start();
  return { store, deliverer, service: new WebhookService(store, deps.feed, deliverer) };
}
