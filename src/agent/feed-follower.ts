/**
 * Follows the catalog's change feed (GET /container_registries/changes as Server-Sent Events, SPEC 12) the
 * way a node should: list from revision 0, then stream; after a dropped connection resume from the last
 * event id (`Last-Event-ID`), waiting a jittered, growing delay so that a fleet of nodes does not reconnect
 * in step after a replica restarts; a 410 (the position is older than the retained history), a 400 on the
 * position, or a new catalog epoch (a restored database) means: forget everything and list again. A stream
 * that stays silent longer than a few bookmark intervals is treated as dead. A 401 or 403 stops the
 * follower: the key is wrong, and retrying will not fix it.
 * A client of the public API only: it imports no server code.
 */
import type { FeedChange } from '../nodes';
import { authHeaders, type ServerAccess } from './args';
import { SseParser } from './sse';

/** The service refused the key (401) or its role (403). */
export class KeyRejectedError extends Error {
  override name = 'KeyRejectedError';
}

export interface FollowerHandlers {
  /** The catalog is about to be listed again from revision 0: forget every entry held. */
  reset(reason: string): void;
  change(change: FeedChange, revision: number): void;
  /** A bookmark: every change up to `revision` was delivered (the first one of a connection ends its catch-up). */
  bookmark(revision: number): void;
  log(level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void;
}

export interface FollowerOptions {
  access: ServerAccess;
  /** A connection that delivers nothing (not even a bookmark) for this long is dropped and opened again. */
  idleTimeoutMs?: number;
  /** Reconnect delays: from `minMs`, doubling per failed attempt up to `maxMs`, each taken at 50–100 %. */
  backoff?: { minMs: number; maxMs: number };
  /** Give up (throw) after the first failed connection instead of retrying (--once). */
  noRetry?: boolean;
}

class Relist extends Error {}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

export class FeedFollower {
  /** Every change up to here was delivered to the handlers (0: nothing yet, the next connection lists). */
  revision = 0;
  /** The catalog's epoch, from the last connection's X-Catalog-Epoch. */
  epoch: string | undefined;
  private attempt = 0;
  private readonly idleMs: number;
  private readonly backoff: { minMs: number; maxMs: number };

  constructor(
    private readonly opts: FollowerOptions,
    private readonly on: FollowerHandlers,
  ) {
    this.idleMs = opts.idleTimeoutMs ?? 45_000;
    this.backoff = opts.backoff ?? { minMs: 500, maxMs: 30_000 };
  }

  /** Follows until `signal` aborts (resolves) or the key is refused (KeyRejectedError). */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.connect(signal);
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof KeyRejectedError) throw e;
        if (e instanceof Relist) {
          this.relist(e.message);
          continue;
        }
        if (this.opts.noRetry) throw e;
        const delay = this.nextDelay();
        this.on.log('warn', 'change feed unreachable; keeping the files as they are and retrying', { error: (e as Error).message, retry_in_ms: delay, revision: this.revision });
        await sleep(delay, signal);
        continue;
      }
      if (signal.aborted) return;
      if (this.opts.noRetry) throw new Error('the change feed ended before it was read');
      const delay = this.nextDelay();
      this.on.log('info', 'change feed stream ended; reconnecting', { retry_in_ms: delay, revision: this.revision });
      await sleep(delay, signal);
    }
  }

  private nextDelay(): number {
    const full = Math.min(this.backoff.maxMs, this.backoff.minMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.round(full * (0.5 + Math.random() * 0.5));
  }

  private relist(reason: string): void {
    this.on.log('warn', 'listing the catalog again', { reason, revision: this.revision });
    this.revision = 0;
    this.on.reset(reason);
  }

  /** One connection: resolves when the server ends the stream, throws on anything else. */
  private async connect(outer: AbortSignal): Promise<void> {
    const idle = new AbortController();
    const signal = AbortSignal.any([outer, idle.signal]);
    let timer = setTimeout(() => idle.abort(new Error(`no data for ${this.idleMs} ms`)), this.idleMs);
    const alive = () => {
      clearTimeout(timer);
      timer = setTimeout(() => idle.abort(new Error(`no data for ${this.idleMs} ms`)), this.idleMs);
    };
    try {
      const headers: Record<string, string> = { Accept: 'text/event-stream', ...authHeaders(this.opts.access) };
      if (this.revision > 0) headers['Last-Event-ID'] = String(this.revision);
      const res = await fetch(`${this.opts.access.server}/container_registries/changes`, { headers, signal });
      await this.check(res);
      const body = res.body;
      if (!body) throw new Error('the change feed answered without a body');
      const decoder = new TextDecoder('utf-8');
      const parser = new SseParser();
      const reader = body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          alive();
          for (const event of parser.push(decoder.decode(value, { stream: true }))) this.event(event.type, event.data);
        }
      } catch (e) {
        throw signal.aborted && idle.signal.aborted ? (idle.signal.reason as Error) : e;
      } finally {
        reader.releaseLock();
        void body.cancel().catch(() => undefined);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Throws for every answer but a stream of this catalog's epoch. */
  private async check(res: Response): Promise<void> {
    if (res.status === 200 && (res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
      const epoch = res.headers.get('x-catalog-epoch') ?? undefined;
      const changed = this.epoch !== undefined && epoch !== undefined && epoch !== this.epoch;
      this.epoch = epoch ?? this.epoch;
      if (changed && this.revision > 0) {
        await res.body?.cancel();
        throw new Relist(`the catalog's epoch changed (a restored or new database): revisions from before mean nothing now`);
      }
      return;
    }
    const text = (await res.text().catch(() => '')).slice(0, 500);
    let detail = text;
    try {
      detail = (JSON.parse(text) as { detail?: string }).detail ?? text;
    } catch {
      // not a problem document
    }
    if (res.status === 401 || res.status === 403) throw new KeyRejectedError(`the service refused the key (${res.status}): ${detail}`);
    if (res.status === 410) throw new Relist(`revision ${this.revision} is older than the history the service keeps (410)`);
    if (res.status === 400 && this.revision > 0) throw new Relist(`the service refused position ${this.revision} (400: ${detail})`);
    throw new Error(`the change feed answered ${res.status}: ${detail}`);
  }

  private event(type: string, data: string): void {
    if (type !== 'upsert' && type !== 'delete' && type !== 'bookmark') return;
    let parsed: { revision?: unknown; container_registry_id?: unknown; entry?: unknown };
    try {
      parsed = JSON.parse(data) as typeof parsed;
    } catch {
      throw new Error(`the change feed sent an event that is not JSON: ${data.slice(0, 100)}`);
    }
    const revision = Number(parsed.revision);
    if (!Number.isSafeInteger(revision)) throw new Error(`the change feed sent an event without a revision: ${data.slice(0, 100)}`);
    if (type === 'bookmark') {
      if (revision > this.revision) this.revision = revision;
      this.attempt = 0;
      this.on.bookmark(this.revision);
      return;
    }
    const id = String(parsed.container_registry_id);
    const change = (type === 'upsert' ? { type, container_registry_id: id, entry: parsed.entry } : { type, container_registry_id: id }) as FeedChange;
    this.on.change(change, revision);
    if (revision > this.revision) this.revision = revision;
  }
}
