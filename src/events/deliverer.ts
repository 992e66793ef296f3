/**
 * Webhook delivery (SPEC 16): durable, at-least-once, in revision order per subscription.
 *
 * Each replica keeps one worker per active subscription; a worker delivers only while it holds the
 * subscription's lease (src/db/lease.ts), so one replica delivers a subscription at a time. The worker reads
 * from the change feed's in-memory view, never from the database's change log: it takes the next item
 * after the subscription's stored position (view.forEachSince), derives its events (events.ts), POSTs
 * each one signed (signing.ts) through the probe HTTP client (egress policy, timeouts), and only after
 * the receiver answered 2xx stores what the subscription now knows about the entry, then the position,
 * in batches (BATCH_ITEMS, FLUSH_AFTER_MS: the rate is bounded by the receiver, not by the database's writes).
 * A crash in between redelivers the same event ids. After a restart the worker resumes from the stored
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
import type { DeliveryRow, StoredSubscription, WebhookStore } from './store';

export interface DelivererOptions {
  timeoutMs: number;
  retryMinMs: number;
  retryMaxMs: number;
  retryForMs: number;
  concurrency: number;
  leaseMs: number;
}

/**
 * What a delivered event leaves to write (its attempt, the entry's state, the counter, the position) waits in
 * a batch, written with one insert, one bulk write and one update: when this many items are pending, when the
 * oldest has waited FLUSH_AFTER_MS (then in the background, one batch in flight, while deliveries go on), when
 * the worker runs out of items, and before anything else is written (a failure, a status change). The position
 * is written last, so a batch cut short by the database (or a crash) is delivered again from the stored
 * position, never skipped (at least once: the same event ids again).
 */
const BATCH_ITEMS = 200;
const FLUSH_AFTER_MS = 250;

export function backoffMs(attempt: number, min: number, max: number, random = Math.random): number {
  const d = Math.min(max, min * 2 ** Math.min(30, attempt - 1));
  return Math.round(d / 2 + (random() * d) / 2);
}

/** Writes of delivered events not yet stored (see BATCH_ITEMS). */
interface Pending {
  attempts: Array<Omit<DeliveryRow, '_id'>>;
  /** Entry id → the state to store (null: remove). */
  known: Map<string, Known | null>;
  delivered: number;
  /** A delivery succeeded after failures: failing_since is cleared with the batch. */
  recovered: boolean;
  /** Items the position moved over since the last write. */
  items: number;
  /** When the oldest pending write was made (0: none). */
  since: number;
}

const emptyPending = (): Pending => ({ attempts: [], known: new Map(), delivered: 0, recovered: false, items: 0, since: 0 });

interface Loaded {
  sub: StoredSubscription;
  key: Buffer;
  lens: ConsumerLens;
  wanted: ReadonlySet<EventType>;
  known: Map<string, Known>;
  position: number;
  pending: Pending;
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

  /** A wake that came while the worker was not asleep (delivering, writing a batch): its next sleep ends at once. */
  private woken = false;

  wake(): void {
    if (this.wakeUp) this.wakeUp();
    else this.woken = true;
  }

  stop(): void {
    this.stopped = true;
    this.wake();
  }

  private sleep(ms: number): Promise<void> {
    // A change published while the worker was busy (after its last look at the view) is not slept through.
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
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
      // The service stops: what was delivered is stored while the lease is still this replica's (a worker
      // stopped because its subscription went away writes nothing more).
      if (this.state && this.d.stopping) await this.flushIfHeld(this.state).catch(() => undefined);
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
        // Wakes from here on count: a change published during the step or the flush ends the sleep below.
        this.woken = false;
        if (!(await this.step(this.state))) {
          await this.flush(this.state);
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
    // A batch still being written lands (or fails) before the stored position is read.
    await this.flushing;
    this.flushFailed = undefined;
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
      pending: emptyPending(),
    };
  }

  /**
   * Writes the pending batch (after the one in flight): attempts, entry states, then counters and position in
   * one update. A failure throws (the loop reloads from the stored position and delivers the batch's items again).
   */
  private async flush(s: Loaded): Promise<void> {
    await this.flushing;
    this.throwIfFlushFailed();
    const [batch, position] = [s.pending, s.position];
    s.pending = emptyPending();
    await this.write(batch, position);
  }

  /**
   * Starts writing the pending batch while deliveries go on (one batch in flight at a time; deliveries wait for
   * it only when far ahead of it). A failure is thrown by the next step.
   */
  private async flushSoon(s: Loaded): Promise<void> {
    if (this.flushing) {
      if (s.pending.items >= 4 * BATCH_ITEMS) await this.flushing;
      return;
    }
    const [batch, position] = [s.pending, s.position];
    s.pending = emptyPending();
    this.flushing = this.write(batch, position)
      .catch((e: unknown) => void (this.flushFailed = e ?? new Error('webhook batch write failed')))
      .finally(() => (this.flushing = undefined));
  }

  private flushing?: Promise<void>;
  private flushFailed?: unknown;

  private throwIfFlushFailed(): void {
    const e = this.flushFailed;
    this.flushFailed = undefined;
    if (e !== undefined) throw e;
  }

  private async write(p: Pending, position: number): Promise<void> {
    if (p.items === 0 && p.attempts.length === 0) return;
    await this.d.store.recordMany(p.attempts);
    await this.d.store.saveKnownMany(this.id, p.known);
    await this.d.store.update(this.id, { position, ...(p.recovered ? { failing_since: null } : {}) }, p.delivered > 0 ? { delivered: p.delivered } : undefined);
  }

  private async flushIfHeld(s: Loaded): Promise<void> {
    if ((await this.lease.hold()) === 'held') await this.flush(s);
  }

  private due(p: Pending): boolean {
    return p.items >= BATCH_ITEMS || (p.since > 0 && Date.now() - p.since >= FLUSH_AFTER_MS);
  }

  /** Delivers the next item after the position; false when there is none. */
  private async step(s: Loaded): Promise<boolean> {
    this.throwIfFlushFailed();
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
    const p = s.pending;
    if (JSON.stringify(before ?? null) !== JSON.stringify(known)) p.known.set(item.id, known);
    s.position = item.revision;
    p.items++;
    p.since ||= Date.now();
    if (this.due(p)) await this.flushSoon(s);
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
      const row = { sub: this.id, event_id: ev.id, type: ev.type, revision: ev.revision, attempt, http_status: status, error, duration_ms: at.getTime() - started, at };
      if (status !== null && status >= 200 && status < 300) {
        const p = s.pending;
        p.attempts.push(row);
        p.delivered++;
        p.since ||= Date.now();
        if (s.sub.failing_since) p.recovered = true;
        s.sub.failing_since = null;
        return;
      }
      // A failure is written at once, after what was delivered before it.
      await this.flush(s);
      await this.d.store.record(row);
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
        const finish = () => {
          clearTimeout(t);
          this.wakeUp = undefined;
          resolve();
        };
        const t = setTimeout(finish, Math.min(until - Date.now(), this.d.opts.leaseMs / 4));
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

  /** True once stop() began (workers then store their pending batch before they end). */
  get stopping(): boolean {
    return !this.running;
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
