/**
 * Change-feed consumers for tests (SPEC 12): a Server-Sent Events client over real HTTP (fetch, aborted
 * at will to force reconnects), and the copy of the catalog a consumer builds by applying the feed in order.
 */

export interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

export interface SseStream {
  status: number;
  headers: Headers;
  events: SseEvent[];
  /** Resolves with the first event (at or after index `from`) that `pred` accepts; rejects after `ms`. */
  until(pred: (e: SseEvent) => boolean, ms?: number, from?: number): Promise<SseEvent>;
  /** Resolves when the stream ended (server closed it, or it was aborted). */
  ended: Promise<void>;
  abort(): void;
}

/** Opens `url` with `Accept: text/event-stream` (plus `headers`) and parses events as they arrive. */
export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { Accept: 'text/event-stream', ...headers }, signal: ac.signal });
  const events: SseEvent[] = [];
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  let done = false;
  const ended = (async () => {
    if (!res.body) return;
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        buf += decoder.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev: SseEvent = { event: 'message', data: '' };
          const data: string[] = [];
          for (const line of block.split('\n')) {
            const c = line.indexOf(':');
            if (c === 0) continue;
            const field = c < 0 ? line : line.slice(0, c);
            const val = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
            if (field === 'id') ev.id = val;
            else if (field === 'event') ev.event = val;
            else if (field === 'data') data.push(val);
          }
          if (data.length === 0) continue; // retry: or a comment
          ev.data = data.join('\n');
          events.push(ev);
        }
        notify();
      }
    } catch {
      // aborted or reset: the consumer reconnects
    } finally {
      done = true;
      notify();
    }
  })();
  return {
    status: res.status,
    headers: res.headers,
    events,
    ended,
    abort: () => ac.abort(),
    until(pred, ms = 10_000, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = events.slice(from).find(pred);
          if (hit) finish(() => resolve(hit));
          else if (done) finish(() => reject(new Error(`stream ended without the event; got ${JSON.stringify(events.slice(from)).slice(0, 2000)}`)));
        };
        const timer = setTimeout(() => finish(() => reject(new Error(`no such event within ${ms} ms; got ${JSON.stringify(events.slice(from)).slice(0, 2000)}`))), ms);
        const finish = (f: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          f();
        };
        waiters.add(check);
        check();
      });
    },
  };
}

export interface FeedChange {
  revision: number;
  type: 'upsert' | 'delete';
  container_registry_id: string;
  entry?: { version: number; revision: number; [k: string]: unknown };
  at: string;
}

/** What a consumer keeps of an entry: enough to compare with the catalog. */
export interface Held {
  version: number;
  revision: number;
}

/**
 * A consumer's copy of the catalog, built by applying changes in order. Records every violation of the
 * feed's promises it can see on its own: a revision going backwards, an upsert whose entry carries another
 * revision than the change.
 */
export class FeedCopy {
  readonly entries = new Map<string, Held>();
  revision = 0;
  applied = 0;
  readonly violations: string[] = [];

  apply(c: FeedChange): void {
    if (c.revision <= this.revision) this.violations.push(`change at ${c.revision} after ${this.revision} (${c.type} ${c.container_registry_id})`);
    this.revision = Math.max(this.revision, c.revision);
    this.applied++;
    if (c.type === 'delete') this.entries.delete(c.container_registry_id);
    else {
      if (c.entry?.revision !== c.revision) this.violations.push(`upsert at ${c.revision} carries entry revision ${c.entry?.revision}`);
      this.entries.set(c.container_registry_id, { version: Number(c.entry?.version), revision: c.revision });
    }
  }

  /** A position the consumer reached without a change (page revision, bookmark). */
  reach(revision: number): void {
    if (revision < this.revision) this.violations.push(`position went back from ${this.revision} to ${revision}`);
    this.revision = Math.max(this.revision, revision);
  }

  snapshot(): Record<string, Held> {
    return Object.fromEntries([...this.entries].sort(([a], [b]) => a.localeCompare(b)));
  }
}

/** The catalog as stored in the database's collection: id → version and revision. */
export async function catalogFromDb(coll: { find: (f: object, o: object) => { toArray(): Promise<Array<Record<string, unknown>>> } }): Promise<Record<string, Held>> {
  const docs = await coll.find({}, { projection: { _id: 1, version: 1, revision: 1 } }).toArray();
  return Object.fromEntries(docs.map((d) => [String(d._id), { version: Number(d.version), revision: Number(d.revision) }]).sort(([a], [b]) => String(a).localeCompare(String(b))));
}
