/**
 * Webhook delivery (SPEC 16): durable, at-least-once, in revision order per subscription.
 *
 * Each replica keeps one worker per active subscription; a worker delivers only while it holds the
 * subscription's lease (src/db/lease.ts), so one replica delivers a subscription at a time. The worker reads
 * from the change feed's in-memory view, never from the database's change log: it takes the next item
 * after the subscription's stored position (view.forEachSince), derives its events (events.ts), POSTs
 * each one signed (signing.ts) through the probe HTTP client (egress policy, timeouts), and only after
 * the receiver answered 2xx stores what the subscription now knows about the entry, then the position.
 * A crash in between redelivers the same event id. After a restart the worker resumes from the stored
 * position. Feed changes wake idle workers.
 *
 * Failures: exponential backoff with full jitter in [d/2, d] where d = min(retryMax, retryMin * 2^(n-1)),
 * for at most retryFor since the event first failed; then the subscription is `failing` and stops (enabling
 * it again resumes from its position: service.ts). A 410 answer disables it at once. Sends
 * across subscriptions share `concurrency` slots; a subscription has at most one request in flight, so a
 * slow or hanging receiver (bounded by the timeout) holds one slot and never delays the others' order.
 */
import { LeaseHolder, type Leases } from '../db/lease';
import { Slots } from '../lib/slots';
import { ConsumerLens } from '../feed/changes';
import type { CatalogFeed } from '../feed/reader';
import type { Logger } from '../logger';
import type { HttpClient } from '../probe';
import { ProbeError } from '../probe/errors';
import { parseFilter } from '../registries/query';
import type { ViewItem } from '../view/catalog-view';
import { deriveEvents, type EventType, type Known, type WebhookEvent } from './events';
import { secretKey, signedHeaders } from './signing';
import type { StoredSubscription, WebhookStore } from './store';

export interface DelivererOptions {
  timeoutMs: number;
  retryMinMs: number;
  retryMaxMs: number;
  retryForMs: number;
  concurrency: number;
  leaseMs: number;
}

/** Position writes are batched over items that were no event for the subscription. */
const POSITION_BATCH = 200;

export function backoffMs(attempt: number, min: number, max: number, random = Math.random): number {
  const d = Math.min(max, min * 2 ** Math.min(30, attempt - 1));
  return Math.round(d / 2 + (random() * d) / 2);
}

interface Loaded {
  sub: StoredSubscription;
  key: Buffer;
  lens: ConsumerLens;
  wanted: ReadonlySet<EventType>;
  known: Map<string, Known>;
  position: number;
  dirty: number;
}

class Stopped extends Error {}

class Worker {
  stopped = false;
  /** The deliverer's refresh generation when this worker started. */
  generation = 0;
  private wakeUp?: () => void;
  private state?: Loaded;
  private readonly lease: LeaseHolder;
  done?: Promise<void>;

  constructor(
    readonly id: string,
    private readonly d: WebhookDeliverer,
  ) {
    this.lease = new LeaseHolder(d.leases, id);
  }

  wake(): void {
    this.wakeUp?.();
  }

  stop(): void {
    this.stopped = true;
    this.wake();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wakeUp = undefined;
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }

  async run(): Promise<void> {
    try {
      await this.loop();
    } finally {
      // Another replica takes the subscription over at once (after a stop, or when it is no longer active).
      await this.lease.release().catch(() => undefined);
    }
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        const held = await this.lease.hold();
        if (held === 'lost') {
          this.state = undefined;
          await this.sleep(this.d.opts.leaseMs / 2);
          continue;
        }
        if (held === 'acquired' || !this.state) {
          this.state = await this.load();
          if (!this.state) return;
          this.d.logger.info('webhooks: delivering subscription', { subscription: this.id, position: this.state.position });
        }
        if (!(await this.step(this.state))) {
          await this.flushPosition(this.state);
          await this.sleep(this.d.opts.leaseMs / 4);
        }
      } catch (e) {
        if (e instanceof Stopped) continue;
        this.state = undefined;
        this.d.logger.warn('webhooks: delivery loop failed; retrying', { subscription: this.id, error: String(e) });
        await this.sleep(1000);
      }
    }
  }

  private async load(): Promise<Loaded | undefined> {
    const sub = await this.d.store.get(this.id);
    if (!sub || sub.status !== 'active') {
      this.stopped = true;
      return undefined;
    }
    const filter = sub.filter_json ? parseFilter(JSON.parse(sub.filter_json)) : undefined;
    return {
      sub,
      key: secretKey(this.d.store.open(sub)),
      lens: new ConsumerLens({ filter: filter && Object.keys(filter).length > 0 ? filter : undefined, localOnly: false }),
      wanted: new Set(sub.events),
      known: await this.d.store.loadKnown(this.id),
      position: sub.position,
      dirty: 0,
    };
  }

  private async flushPosition(s: Loaded): Promise<void> {
    if (s.dirty === 0) return;
    await this.d.store.update(this.id, { position: s.position });
    s.dirty = 0;
  }

  /** Delivers the next item after the position; false when there is none. */
  private async step(s: Loaded): Promise<boolean> {
    let item: ViewItem | undefined;
    this.d.feed.view.forEachSince(s.position, (it) => {
      item = it;
      return false;
    });
    if (!item) return false;
    const { events, known } = deriveEvents(this.id, s.lens, s.wanted, item, s.known.get(item.id));
    for (const ev of events) await this.deliver(s, ev);
    const before = s.known.get(item.id);
    if (known) s.known.set(item.id, known);
    else s.known.delete(item.id);
    if (JSON.stringify(before ?? null) !== JSON.stringify(known)) await this.d.store.saveKnown(this.id, item.id, known);
    s.position = item.revision;
    s.dirty++;
    if (events.length > 0 || s.dirty >= POSITION_BATCH) await this.flushPosition(s);
    return true;
  }

  /** One event until a 2xx; throws Stopped when the subscription ends or the lease is lost. */
  private async deliver(s: Loaded, ev: WebhookEvent): Promise<void> {
    const body = JSON.stringify(ev);
    for (let attempt = 1; ; attempt++) {
      if (this.stopped || (await this.lease.hold()) !== 'held') throw this.lost();
      const started = Date.now();
      const { status, error } = await this.d.slots.run(() => this.send(s, ev.id, body));
      const at = new Date();
      await this.d.store.record({ sub: this.id, event_id: ev.id, type: ev.type, revision: ev.revision, attempt, http_status: status, error, duration_ms: at.getTime() - started, at });
      if (status !== null && status >= 200 && status < 300) {
        const set: Partial<StoredSubscription> = s.sub.failing_since ? { failing_since: null } : {};
        s.sub.failing_since = null;
        await this.d.store.update(this.id, set, { delivered: 1 });
        return;
      }
      const lastError = { at, event_id: ev.id, http_status: status, error: error ?? `HTTP ${status}` };
      if (status === 410) {
        await this.d.store.update(this.id, { status: 'disabled', status_reason: 'the receiver answered 410 Gone', last_error: lastError }, { failed_attempts: 1 });
        this.d.logger.warn('webhooks: subscription disabled (410 Gone)', { subscription: this.id });
        this.stopped = true;
        throw new Stopped();
      }
      s.sub.failing_since ??= at;
      const failingFor = at.getTime() - s.sub.failing_since.getTime();
      if (failingFor >= this.d.opts.retryForMs) {
        await this.d.store.update(this.id, { status: 'failing', status_reason: `no delivery succeeded for ${Math.round(failingFor / 1000)} s`, last_error: lastError, failing_since: s.sub.failing_since }, { failed_attempts: 1 });
        this.d.logger.warn('webhooks: subscription marked failing', { subscription: this.id, event_id: ev.id });
        this.stopped = true;
        throw new Stopped();
      }
      await this.d.store.update(this.id, { last_error: lastError, failing_since: s.sub.failing_since }, { failed_attempts: 1 });
      await this.pause(backoffMs(attempt, this.d.opts.retryMinMs, this.d.opts.retryMaxMs));
    }
  }

  private lost(): Stopped {
    this.state = undefined;
    return new Stopped();
  }

  /** Waits `ms` (not cut short by feed changes), renewing the lease meanwhile. */
  private async pause(ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (!this.stopped && Date.now() < until) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(finish, Math.min(until - Date.now(), this.d.opts.leaseMs / 4));
        function finish() {
          clearTimeout(t);
          resolve();
        }
        // Only stop() ends a pause early (feed changes do not).
        this.wakeUp = () => (this.stopped ? finish() : undefined);
      });
      if ((await this.lease.hold()) !== 'held') throw this.lost();
    }
    if (this.stopped) throw new Stopped();
  }

  private async send(s: Loaded, id: string, body: string): Promise<{ status: number | null; error: string | null }> {
    let url: URL;
    try {
      url = new URL(s.sub.url);
    } catch {
      return { status: null, error: 'invalid_url: the subscription URL cannot be parsed' };
    }
    try {
      const res = await this.d.client.send({
        url,
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json', 'user-agent': 'registry-db-webhooks/0.1', ...signedHeaders(s.key, id, body) },
        tls: {},
        signal: AbortSignal.timeout(this.d.opts.timeoutMs),
        maxBodyBytes: 1024,
      });
      return { status: res.status, error: null };
    } catch (e) {
      if (e instanceof ProbeError) return { status: null, error: `${e.code}: ${e.message}` };
      const err = e as Error & { code?: string; cause?: { code?: string } };
      if (err.name === 'TimeoutError' || err.name === 'AbortError') return { status: null, error: `timeout: no answer within ${this.d.opts.timeoutMs} ms` };
      const code = err.code ?? err.cause?.code;
      return { status: null, error: `${code ? code + ': ' : ''}${err.message}` };
    }
  }
}

export class WebhookDeliverer {
  private readonly workers = new Map<string, Worker>();
  readonly slots: Slots;
  private running = false;
  private refreshTimer?: NodeJS.Timeout;
  private unsubscribe?: () => void;
  private generation = 0;

  constructor(
    readonly store: WebhookStore,
    readonly feed: CatalogFeed,
    /** One deliverer per subscription: the lease of scope `webhook` keyed by the subscription id. */
    readonly leases: Leases,
    readonly client: HttpClient,
    readonly logger: Logger,
    readonly opts: DelivererOptions,
  ) {
    this.slots = new Slots(opts.concurrency);
  }

  /** Starts once the view is loaded: workers for every active subscription, kept in step every lease/2. */
  start(): void {
    this.running = true;
    this.feed.onReady(() => {
      if (!this.running) return;
      this.unsubscribe = this.feed.subscribe(() => {
        for (const w of this.workers.values()) w.wake();
      });
      void this.refresh();
      this.refreshTimer = setInterval(() => void this.refresh(), Math.max(500, this.opts.leaseMs / 2));
      this.refreshTimer.unref();
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.refreshTimer);
    this.unsubscribe?.();
    const all = [...this.workers.values()];
    this.workers.clear();
    for (const w of all) w.stop();
    await Promise.all(all.map((w) => w.done));
  }

  /** Starts a worker for every active subscription not yet running; stops those gone or no longer active. */
  async refresh(): Promise<void> {
    if (!this.running) return;
    try {
      const generation = ++this.generation;
      const subs = await this.store.list();
      const active = new Set(subs.filter((s) => s.status === 'active').map((s) => s._id));
      for (const [id, w] of this.workers) {
        // A worker started while the list was read (a subscription just created here) is not in it yet.
        if ((!active.has(id) && w.generation < generation) || w.stopped) {
          w.stop();
          this.workers.delete(id);
        }
      }
      for (const id of active) if (!this.workers.has(id)) this.startWorker(id);
    } catch (e) {
      this.logger.warn('webhooks: listing subscriptions failed', { error: String(e) });
    }
  }

  /** A subscription created or deleted on this replica takes effect at once. */
  added(id: string): void {
    if (this.running && this.feed.ready && !this.workers.has(id)) this.startWorker(id);
  }

  removed(id: string): void {
    this.workers.get(id)?.stop();
    this.workers.delete(id);
  }

  private startWorker(id: string): void {
    const w = new Worker(id, this);
    w.generation = this.generation;
    this.workers.set(id, w);
    w.done = w.run().finally(() => {
      if (this.workers.get(id) === w && w.stopped) this.workers.delete(id);
    });
  }
}
