/**
 * Loopback HTTP servers for what a real registry will not do: hang, answer 500 or 429, serve an HTML page,
 * send odd challenges, redirect in a loop, put its token realm on another port. Each counts the TCP
 * connections it accepted, so a test can prove that a blocked probe sent nothing.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface FakeServer {
  url: string;
  port: number;
  /** TCP connections accepted so far. */
  connections(): number;
  /** Requests received so far (method, url, authorization). */
  requests: Array<{ method: string; url: string; authorization: string | undefined }>;
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, server: FakeServer) => void;

const open = new Set<FakeServer>();

export async function startFakeServer(handler: Handler, host = '127.0.0.1'): Promise<FakeServer> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer();
  const fake: FakeServer = {
    url: '',
    port: 0,
    connections: () => connections,
    requests: [],
    close: async () => {
      open.delete(fake);
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  server.on('connection', (socket: Socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('request', (req, res) => {
    fake.requests.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization });
    handler(req, res, fake);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, resolve));
  fake.port = (server.address() as AddressInfo).port;
  fake.url = `http://${host}:${fake.port}`;
  open.add(fake);
  return fake;
}

export async function closeAllFakeServers(): Promise<void> {
  await Promise.all([...open].map((s) => s.close()));
}

/** Accepts the request and never answers. */
export const hang: Handler = () => undefined;

/** Reads the request, then drops the connection without a byte of answer. */
export const reset: Handler = (req) => {
  req.socket.destroy();
};

export const status =
  (code: number, headers: Record<string, string> = {}, body = ''): Handler =>
  (_req, res) => {
    res.writeHead(code, headers).end(body);
  };

export const tooManyRequests: Handler = status(429, { 'Retry-After': '30', 'Content-Type': 'application/json' }, '{"errors":[{"code":"TOOMANYREQUESTS"}]}');

export const serverError: Handler = status(500, { 'Content-Type': 'text/plain' }, 'internal error');

export const htmlPage: Handler = status(200, { 'Content-Type': 'text/html; charset=utf-8' }, '<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>');

/** 401 with the given WWW-Authenticate value(s) on every request. */
export const challenge = (value: string | string[]): Handler => (_req, res) => {
  res.writeHead(401, { 'WWW-Authenticate': value, 'Content-Type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
};

/** Redirects every request to the same path with a counter: an endless loop. */
export const redirectLoop: Handler = (req, res) => {
  const n = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('hop') ?? '0');
  res.writeHead(302, { Location: `/v2/?hop=${n + 1}` }).end();
};

/**
 * A registry-shaped server that wants a Bearer token from `realm` (usually another fake server on another
 * port) and accepts exactly `Bearer <token>`.
 */
export const bearerRegistry = (realm: () => string, token: string, service = 'fake-service'): Handler => (req, res) => {
  if (req.headers.authorization === `Bearer ${token}`) {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Docker-Distribution-API-Version': 'registry/2.0' }).end('{}');
    return;
  }
  res
    .writeHead(401, { 'Content-Type': 'application/json', 'Docker-Distribution-API-Version': 'registry/2.0', 'WWW-Authenticate': `Bearer realm="${realm()}",service="${service}"` })
    .end('{"errors":[{"code":"UNAUTHORIZED"}]}');
};

/** A token endpoint that hands out `body` (JSON) to the Basic credentials given, 401 otherwise. */
export const tokenEndpoint = (username: string, password: string, body: object): Handler => (req, res) => {
  const expected = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  if (req.headers.authorization !== expected) {
    res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"details":"incorrect username or password"}');
    return;
  }
  res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
};
