/**
 * Loopback peer catalogs that a follower (src/federation/follower.ts) should survive: a change feed that
 * answers at once with nothing new, pages far larger than a heap can parse, entries carrying megabytes or
 * values this service would never write. Built on fake-servers.ts (each counts its requests), serving
 * GET /container_registries/changes with the query a follower sends (`since`, `limit`, `wait`); and a proxy
 * that keeps a peer's address while the catalog behind it is replaced (restored from an export).
 */
import { randomUUID } from 'node:crypto';
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import { startFakeServer, type FakeServer } from './fake-servers';

export interface FeedQuery {
  since: number;
  limit: number;
  wait: number;
}

export function feedQuery(req: IncomingMessage): FeedQuery {
  const u = new URL(req.url ?? '/', 'http://peer');
  return { since: Number(u.searchParams.get('since') ?? 0), limit: Number(u.searchParams.get('limit') ?? 500), wait: Number(u.searchParams.get('wait') ?? 0) };
}

/** A change of a peer's feed: an upsert of `entry` (its id as the change's id), or a delete of `id`. */
export function upsert(revision: number, entry: Record<string, unknown>): Record<string, unknown> {
  return { revision, type: 'upsert', container_registry_id: entry.container_registry_id, entry, at: new Date().toISOString() };
}

/** A valid entry as a peer's API shows it, with `overrides`. */
export function peerEntry(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const id = randomUUID();
  return {
    container_registry_id: id,
    container_registry_name: `peer-${id.slice(0, 8)}`,
    container_registry_public_url: 'http://127.0.0.1:5999',
    container_registry_health: { status: 'healthy', consecutive_failures: 0 },
    created_at: '2026-01-01T00:00:00.000Z',
    updated_at: '2026-01-01T00:00:00.000Z',
    version: 1,
    ...overrides,
  };
}

const json = (res: ServerResponse, body: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));

/** Serves `pages(query)` as the change feed (whatever the query asks, at once). */
export function startFeedPeer(page: (q: FeedQuery) => unknown): Promise<FakeServer> {
  return startFakeServer((req, res) => {
    if (!(req.url ?? '').startsWith('/container_registries/changes')) return void res.writeHead(404).end();
    json(res, page(feedQuery(req)));
  });
}

/** The changes of `log` (in revision order) after `since`, at most `limit`, the way the service pages them. */
export function pageOf(log: Array<Record<string, unknown>>, q: FeedQuery, epoch?: string): Record<string, unknown> {
  const after = log.filter((c) => (c.revision as number) > q.since).slice(0, q.limit);
  const head = log.length > 0 ? (log[log.length - 1]!.revision as number) : 0;
  const revision = after.length >= q.limit ? (after[after.length - 1]!.revision as number) : Math.max(head, q.since);
  return epoch === undefined ? { revision, changes: after } : { revision, changes: after, epoch };
}

/**
 * Streams a page of `bytes` bytes of `{}` changes, ignoring `limit` (a page a parser would turn into
 * about 22 times its size of heap), written as fast as the client reads.
 */
export function startJunkPagePeer(bytes: number): Promise<FakeServer> {
  const chunk = Buffer.from('{},'.repeat(64 * 1024));
  return startFakeServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"revision":1,"changes":[');
    let sent = 0;
    const more = () => {
      while (sent < bytes) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', more);
      }
      res.end('{}]}');
    };
    res.on('close', () => res.removeAllListeners('drain'));
    more();
  });
}

/**
 * An endless feed of new entries, `perPage` a page, each carrying a health object of `healthBytes` bytes
 * (the 40 entries of 1 MB each): every page is new, so a follower that stored them would grow
 * without end.
 */
export function startFatHealthPeer(perPage: number, healthBytes: number): Promise<FakeServer> {
  const detail = 'x'.repeat(healthBytes);
  return startFeedPeer((q) => {
    const n = Math.min(perPage, q.limit);
    const changes = Array.from({ length: n }, (_, i) => upsert(q.since + i + 1, peerEntry({ container_registry_health: { status: 'healthy', detail } })));
    return { revision: q.since + n, changes };
  });
}

/** A loopback reverse proxy with a fixed URL whose target can change: a peer restored elsewhere, same address. */
export async function startPeerProxy(target: string): Promise<FakeServer & { retarget(url: string): void }> {
  let to = new URL(target);
  const proxy = await startFakeServer((req, res) => {
    const up = request({ host: to.hostname, port: to.port, path: req.url, method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    up.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  return Object.assign(proxy, { retarget: (url: string) => void (to = new URL(url)) });
}
