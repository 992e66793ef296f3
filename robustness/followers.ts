/**
 * The three followers of a robustness run, each recording every change and position it consumed, with the
 * session (request or connection) it came on:
 *
 * - a long-poll consumer: pages of GET /container_registries/changes?since=P&wait=S, each on a replica chosen
 *   at random, resuming at the revision the last page answered;
 * - an SSE consumer: streams on a replica chosen at random, dropped by the client at random moments (and by
 *   the faults), resumed with Last-Event-ID = the last id it received (a change or a bookmark);
 * - a peer: a fourth service process that follows one replica (PEERS), through a recording proxy that keeps
 *   every page the peer's follower was answered.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FollowerHistory, Session, StreamItem } from './history';
import { snap } from './history';
import { between, errorCode, send, type Clock } from './http';
import { sleep } from './processes';

const PAGE_LIMIT = 500;

interface Change {
  revision: number;
  type: 'upsert' | 'delete';
  container_registry_id: string;
  entry?: Record<string, unknown>;
}

function eventOf(c: Change, at: number): StreamItem {
  const item: StreamItem = { kind: 'event', revision: c.revision, type: c.type, id: c.container_registry_id, at };
  if (c.entry) item.entry = snap(c.entry);
  return item;
}

/** The items of a changes page: its changes, then its revision as a position. */
function pageItems(body: { revision: number; changes: Change[] }, at: number): StreamItem[] {
  return [...body.changes.map((c) => eventOf(c, at)), { kind: 'position', revision: body.revision, source: 'page', at }];
}

const isPage = (b: unknown): b is { revision: number; changes: Change[]; epoch?: string } =>
  typeof b === 'object' && b !== null && typeof (b as { revision?: unknown }).revision === 'number' && Array.isArray((b as { changes?: unknown }).changes);

export interface Follower {
  history: FollowerHistory;
  /** The highest complete position it was given. */
  position(): number;
  stop(): Promise<void>;
}

abstract class Loop implements Follower {
  readonly history: FollowerHistory;
  protected stopped = false;
  protected top = 0;
  private loop?: Promise<void>;

  constructor(name: string, kind: 'longpoll' | 'sse', protected readonly replicas: string[], protected readonly clock: Clock) {
    this.history = { name, kind, linear: true, sessions: [] };
  }

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) await this.session(this.history.sessions.length);
    })();
  }

  position(): number {
    return this.top;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort();
    await this.loop;
  }

  protected abort(): void {}
  protected abstract session(n: number): Promise<void>;

  protected pickReplica(): number {
    return Math.floor(Math.random() * this.replicas.length);
  }
}

export class LongPollFollower extends Loop {
  private since = 0;

  constructor(replicas: string[], clock: Clock, private readonly waitS = 3) {
    super('longpoll', 'longpoll', replicas, clock);
  }

  protected async session(n: number): Promise<void> {
    const replica = this.pickReplica();
    const opened = this.clock.now();
    const a = await send(`${this.replicas[replica]}/container_registries/changes?since=${this.since}&wait=${this.waitS}&limit=${PAGE_LIMIT}`, 'GET', undefined, (this.waitS + 12) * 1000);
    const closed = this.clock.now();
    const s: Session = { n, replica, since: this.since, opened, closed, status: a.status, end: a.status === 0 ? 'error' : 'page', items: [] };
    if (a.error) s.error = a.error;
    if (a.status === 200 && isPage(a.body)) {
      s.items = pageItems(a.body, closed);
      s.full = a.body.changes.length >= PAGE_LIMIT;
      if (a.body.epoch) s.epoch = a.body.epoch;
      this.since = a.body.revision;
      if (!s.full) this.top = Math.max(this.top, a.body.revision);
    }
    this.history.sessions.push(s);
    if (a.status !== 200) await sleep(200);
  }
}

/** The blocks of an SSE stream as they arrive: `{id, event, data}`. */
async function* sseBlocks(body: ReadableStream<Uint8Array>): AsyncGenerator<{ id?: string; event: string; data: string }> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const ev: { id?: string; event: string; data: string } = { event: 'message', data: '' };
      for (const line of block.split('\n')) {
        const c = line.indexOf(':');
        if (c <= 0) continue;
        const field = line.slice(0, c);
        const val = line.slice(c + 1).replace(/^ /, '');
        if (field === 'id') ev.id = val;
        else if (field === 'event') ev.event = val;
        else if (field === 'data') ev.data += val;
      }
      if (ev.data) yield ev;
    }
  }
}

export class SseFollower extends Loop {
  private lastId = 0;
  private current?: AbortController;

  constructor(replicas: string[], clock: Clock, private readonly lifetimeMs: [number, number] = [1500, 8000]) {
    super('sse', 'sse', replicas, clock);
  }

  protected override abort(): void {
    this.current?.abort();
  }

  protected async session(n: number): Promise<void> {
    const replica = this.pickReplica();
    const ac = new AbortController();
    this.current = ac;
    const s: Session = { n, replica, since: this.lastId, opened: this.clock.now(), closed: 0, status: 0, end: 'error', items: [] };
    this.history.sessions.push(s);
    // The client drops the stream at a random moment (and never waits long on a frozen replica).
    const lifetime = setTimeout(() => ac.abort(), between(...this.lifetimeMs));
    try {
      const headers: Record<string, string> = { Accept: 'text/event-stream' };
      if (this.lastId > 0) headers['Last-Event-ID'] = String(this.lastId);
      const res = await fetch(`${this.replicas[replica]}/container_registries/changes`, { headers, signal: ac.signal });
      s.status = res.status;
      s.epoch = res.headers.get('x-catalog-epoch') ?? undefined;
      if (res.status !== 200 || !res.body) {
        await res.text().catch(() => undefined);
        s.end = 'error';
      } else {
        for await (const ev of sseBlocks(res.body)) this.consume(s, ev);
        s.end = 'server';
      }
    } catch (e) {
      s.end = ac.signal.aborted ? 'client' : 'error';
      if (!ac.signal.aborted) s.error = errorCode(e);
    } finally {
      clearTimeout(lifetime);
      s.closed = this.clock.now();
    }
    if (s.status !== 200) await sleep(300);
    else await sleep(between(20, 300));
  }

  private consume(s: Session, ev: { id?: string; event: string; data: string }): void {
    const at = this.clock.now();
    const data = JSON.parse(ev.data) as Change & { revision: number };
    if (ev.event === 'bookmark') {
      s.items.push({ kind: 'position', revision: data.revision, source: 'bookmark', at });
      this.top = Math.max(this.top, data.revision);
    } else if (ev.event === 'upsert' || ev.event === 'delete') s.items.push(eventOf(data, at));
    if (ev.id) this.lastId = Math.max(this.lastId, Number(ev.id));
  }
}

/**
 * A reverse proxy in front of the replica the peer follows: forwards every request, and records each answer
 * to GET /container_registries/changes as a session of the peer's history.
 */
export class PeerRecorder implements Follower {
  readonly history: FollowerHistory = { name: 'peer', kind: 'peer', linear: false, sessions: [] };
  private server?: Server;
  private top = 0;
  port = 0;

  constructor(private readonly target: string, private readonly replica: number, private readonly clock: Clock) {}

  async listen(): Promise<void> {
    this.server = createServer((req, res) => void this.forward(req, res));
    await new Promise<void>((resolve, reject) => this.server!.once('error', reject).listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  position(): number {
    return this.top;
  }

  private async forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.target);
    const opened = this.clock.now();
    const headers: Record<string, string> = {};
    for (const h of ['accept', 'authorization', 'user-agent', 'last-event-id']) if (typeof req.headers[h] === 'string') headers[h] = req.headers[h] as string;
    let status = 502;
    let text = '';
    let epoch: string | null = null;
    let error: string | undefined;
    try {
      const r = await fetch(url, { headers, signal: AbortSignal.timeout(70_000) });
      status = r.status;
      text = await r.text();
      epoch = r.headers.get('x-catalog-epoch');
      res.writeHead(status, { 'Content-Type': r.headers.get('content-type') ?? 'application/json', ...(epoch ? { 'X-Catalog-Epoch': epoch } : {}) });
    } catch (e) {
      error = errorCode(e);
      res.writeHead(502, { 'Content-Type': 'application/json' });
      text = '{}';
    }
    res.end(text);
    if (url.pathname === '/container_registries/changes') this.record(url, opened, status, text, epoch, error);
  }

  private record(url: URL, opened: number, status: number, text: string, epoch: string | null, error?: string): void {
    const closed = this.clock.now();
    const since = Number(url.searchParams.get('since') ?? 0);
    const limit = Number(url.searchParams.get('limit') ?? PAGE_LIMIT);
    const s: Session = { n: this.history.sessions.length, replica: this.replica, since, opened, closed, status, end: status === 200 ? 'page' : 'error', items: [] };
    if (error) s.error = error;
    if (epoch) s.epoch = epoch;
    if (status === 200) {
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      if (isPage(body)) {
        s.items = pageItems(body, closed);
        s.full = body.changes.length >= limit;
        if (!s.full) this.top = Math.max(this.top, body.revision);
      }
    }
    this.history.sessions.push(s);
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }
}
