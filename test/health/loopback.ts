/**
 * Tiny loopback HTTP servers (127.0.0.1 only) that answer `/v2/` like a registry, hang, fail or ask for
 * Basic credentials, switchable per path prefix, counting every request per path.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Behaviour = 'registry' | 'hang' | 'error500' | 'basic' | 'nocatalog';

export interface Loopback {
  base: string;
  /** URL of registry `name` served by this server (`{base}/{name}`; the probe asks `{base}/{name}/v2/`). */
  url(name: string): string;
  /** Requests seen for registry `name` (`name#catalog`: its /v2/_catalog requests). */
  count(name: string): number;
  total(): number;
  set(name: string, behaviour: Behaviour): void;
  /** Every Authorization header received. */
  authorizations: string[];
  close(): Promise<void>;
}

export async function startLoopback(defaults: Behaviour = 'registry', basic?: { username: string; password: string }): Promise<Loopback> {
  const counts = new Map<string, number>();
  const behaviours = new Map<string, Behaviour>();
  const sockets = new Set<Socket>();
  const authorizations: string[] = [];
  const expected = basic ? `Basic ${Buffer.from(`${basic.username}:${basic.password}`).toString('base64')}` : undefined;
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const name = (req.url ?? '/').split('/')[1] ?? '';
    counts.set(name, (counts.get(name) ?? 0) + 1);
    if (req.headers.authorization) authorizations.push(req.headers.authorization);
    const behaviour = behaviours.get(name) ?? defaults;
    const catalog = /\/v2\/_catalog(\?|$)/.test(req.url ?? '');
    if (catalog) counts.set(`${name}#catalog`, (counts.get(`${name}#catalog`) ?? 0) + 1);
    if (catalog && behaviour === 'nocatalog') {
      res.writeHead(404, { 'Docker-Distribution-API-Version': 'registry/2.0', 'Content-Type': 'application/json' }).end('{"errors":[{"code":"UNSUPPORTED"}]}');
      return;
    }
    if (catalog && behaviour === 'registry') {
      res.writeHead(200, { 'Docker-Distribution-API-Version': 'registry/2.0', 'Content-Type': 'application/json' }).end('{"repositories":[]}');
      return;
    }
    if (behaviour === 'hang') return; // never answers
    if (behaviour === 'error500') {
      res.writeHead(500, { 'Content-Type': 'text/plain' }).end('boom');
      return;
    }
    if (behaviour === 'basic' && req.headers.authorization !== expected) {
      res.writeHead(401, { 'Docker-Distribution-API-Version': 'registry/2.0', 'WWW-Authenticate': 'Basic realm="loopback"', 'Content-Type': 'application/json' });
      res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    res.writeHead(200, { 'Docker-Distribution-API-Version': 'registry/2.0', 'Content-Type': 'application/json' }).end('{}');
  };
  const server: Server = createServer(handler);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    url: (name) => `${base}/${name}`,
    count: (name) => counts.get(name) ?? 0,
    total: () => [...counts.values()].reduce((a, b) => a + b, 0),
    set: (name, b) => void behaviours.set(name, b),
    authorizations,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A loopback URL nobody listens on (connection refused). */
export async function refusedUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}
