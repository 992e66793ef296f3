/**
 * Webhook subscriptions (SPEC 16), the domain side of /webhooks: validation (schema, filter like queries,
 * secret), creation at the current revision (a new subscription gets the changes after it), the views
 * the API returns (never the secret, except once in the creation answer), deletion.
 *
 * A URL with credentials (`https://user:pass@host/`) is refused: deliveries never sent them (the HTTP client
 * drops the userinfo) and the receiver authenticates deliveries by their signature instead. One stored before
 * that rule is shown with its userinfo masked (`https://***@host/`), never as written.
 */
import { randomUUID } from 'node:crypto';
import { ConflictError, InputError, NotFoundError, ServiceUnavailableError } from '../errors';
import type { CatalogFeed } from '../feed/reader';
import { parseFilterAt } from '../registries/query';
import { validateWebhookRequest } from '../schemas';
import type { WebhookDeliverer } from './deliverer';
import { generateSecret, secretKey } from './signing';
import type { DeliveryRow, StoredSubscription, WebhookStore } from './store';

export interface SubscriptionView {
  id: string;
  url: string;
  events: string[];
  filter?: unknown;
  status: StoredSubscription['status'];
  status_reason?: string;
  position: number;
  created_at: string;
  delivered: number;
  failed_attempts: number;
  last_error: { at: string; event_id: string; http_status: number | null; error: string } | null;
}

/** The URL with any userinfo masked, for everything that shows or logs it. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (!u.username && !u.password) return url;
    u.username = '***';
    u.password = '';
    return u.href;
  } catch {
    return url.replace(/\/\/[^/?#]*@/, '//***@');
  }
}

/** 400 for a URL with userinfo (see the module comment). */
function refuseCredentials(url: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new InputError('The webhook URL cannot be parsed as a URL.', [{ path: '/url', message: 'is not a URL' }]);
  }
  if (!u.username && !u.password) return;
  throw new InputError('The webhook URL must not carry credentials (user:password@): they would never be sent. The receiver authenticates deliveries by their signature (the webhook-signature header and the secret).', [
    { path: '/url', message: 'must not carry credentials (user:password@); check the webhook-signature header instead' },
  ]);
}

export function subscriptionView(s: StoredSubscription): SubscriptionView {
  return {
    id: s._id,
    url: redactUrl(s.url),
    events: s.events,
    ...(s.filter_json ? { filter: JSON.parse(s.filter_json) as unknown } : {}),
    status: s.status,
    ...(s.status_reason ? { status_reason: s.status_reason } : {}),
    position: s.position,
    created_at: s.created_at.toISOString(),
    delivered: s.delivered,
    failed_attempts: s.failed_attempts,
    last_error: s.last_error ? { ...s.last_error, at: s.last_error.at.toISOString() } : null,
  };
}

export function deliveryView(d: DeliveryRow) {
  return { event_id: d.event_id, type: d.type, revision: d.revision, attempt: d.attempt, http_status: d.http_status, error: d.error, duration_ms: d.duration_ms, at: d.at.toISOString() };
}

export class WebhookService {
  constructor(
    private readonly store: WebhookStore,
    private readonly feed: CatalogFeed,
    private readonly deliverer: WebhookDeliverer,
  ) {}

  async create(body: unknown): Promise<SubscriptionView & { secret: string }> {
    const req = validateWebhookRequest(body);
    refuseCredentials(req.url);
    if (req.filter !== undefined) parseFilterAt(req.filter, '/filter');
    const secret = req.secret ?? generateSecret();
    secretKey(secret);
    if (!this.feed.ready) throw new ServiceUnavailableError('The change feed is still loading the catalog; try again shortly.', 2);
    const id = randomUUID();
    const sub: StoredSubscription = {
      _id: id,
      url: req.url,
      events: [...req.events],
      ...(req.filter !== undefined && Object.keys(req.filter).length > 0 ? { filter_json: JSON.stringify(req.filter) } : {}),
      secret_enc: this.store.seal(id, secret),
      status: 'active',
      // Changes after the subscription: everything this replica acknowledged, or its view holds, is before it.
      position: Math.max(this.feed.view.revision, this.feed.acked),
      created_at: new Date(),
      delivered: 0,
      failed_attempts: 0,
      last_error: null,
      failing_since: null,
    };
    await this.store.create(sub);
    this.deliverer.added(id);
    return { ...subscriptionView(sub), secret };
  }

  async list(): Promise<SubscriptionView[]> {
    return (await this.store.list()).map(subscriptionView);
  }

  async get(id: string): Promise<StoredSubscription> {
    const s = await this.store.get(id);
    if (!s) throw new NotFoundError(`No webhook subscription with id "${id}".`);
    return s;
  }

  /**
   * Makes a failing or disabled subscription active again. It resumes from its stored position, so the
   * events it missed are delivered in order; `from: 'now'` skips them and starts after the current revision.
   * A position the feed no longer holds (its deletes expired) is a 409 that says so.
   */
  async enable(id: string, from: string | undefined): Promise<StoredSubscription> {
    if (from !== undefined && from !== 'now') throw new InputError('from can only be "now".', [{ path: 'from', message: 'must be "now" (skip the events missed while the subscription was not active), or left out to resume from its position' }]);
    const sub = await this.get(id);
    if (!this.feed.ready) throw new ServiceUnavailableError('The change feed is still loading the catalog; try again shortly.', 2);
    const retained = this.feed.view.retained;
    if (from === undefined && sub.position > 0 && sub.position < retained) {
      throw new ConflictError(
        `The subscription stopped at revision ${sub.position}; the catalog keeps deletes back to revision ${retained} only, so some events since then cannot be delivered. Enable it with ?from=now to start after the current revision, or delete and recreate it.`,
        [{ path: 'from', message: `revision ${sub.position} is older than the retained history (${retained})` }],
      );
    }
    const set: Partial<StoredSubscription> = { status: 'active', failing_since: null };
    if (from === 'now') set.position = Math.max(this.feed.view.revision, this.feed.acked);
    await this.store.update(id, set, undefined, ['status_reason']);
    this.deliverer.added(id);
    return { ...sub, ...set, status_reason: undefined };
  }

  async remove(id: string): Promise<void> {
    this.deliverer.removed(id);
    if (!(await this.store.remove(id))) throw new NotFoundError(`No webhook subscription with id "${id}".`);
  }

  async deliveries(id: string) {
    await this.get(id);
    return (await this.store.recent(id)).map(deliveryView);
  }
}
