/**
 * The HTTP server around the Express app, with every connection bounded in time and number (issues 14, 24):
 * - a connection is "waiting" (not being served) until a whole request has arrived, head and body: from the
 *   moment it opens, while a request body is still arriving, and again between keep-alive requests;
 * - a waiting connection without a request head is closed HTTP_CONNECTION_IDLE_TIMEOUT_MS after it opened or
 *   after its last response (Node's own header timeout only starts at the first byte, so a socket that never
 *   sent one was kept forever);
 * - a request body must be complete HTTP_BODY_TIMEOUT_MS after its head: the reader (body.ts) then answers
 *   408 and closes the connection; a body nobody reads has its connection closed;
 * - waiting connections hold at most half of HTTP_MAX_CONNECTIONS: a newer one closes the oldest, so silent
 *   sockets and trickled bodies can never take the slots that /healthz and real clients need. A request being
 *   served (a long poll, an event stream) is not waiting and is never closed for it;
 * - HTTP_MAX_CONNECTIONS caps connections per process (above it Node drops new ones at once);
 * - headersTimeout, requestTimeout and keepAliveTimeout are set from the config, checked every second.
 */
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Config } from '../config';

export type ServerLimits = Pick<
  Config,
  | 'HTTP_MAX_CONNECTIONS'
  | 'HTTP_CONNECTION_IDLE_TIMEOUT_MS'
  | 'HTTP_HEADERS_TIMEOUT_MS'
  | 'HTTP_REQUEST_TIMEOUT_MS'
  | 'HTTP_KEEP_ALIVE_TIMEOUT_MS'
  | 'HTTP_BODY_TIMEOUT_MS'
>;

export function createHttpServer(app: RequestListener, limits: ServerLimits): Server {
  const server = createServer(
    {
      headersTimeout: limits.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeout: limits.HTTP_REQUEST_TIMEOUT_MS,
      keepAliveTimeout: limits.HTTP_KEEP_ALIVE_TIMEOUT_MS,
      connectionsCheckingInterval: 1000,
    },
    app,
  );
  server.maxConnections = limits.HTTP_MAX_CONNECTIONS;
  guardWaitingConnections(server, {
    idleMs: limits.HTTP_CONNECTION_IDLE_TIMEOUT_MS,
    bodyMs: limits.HTTP_BODY_TIMEOUT_MS,
    maxWaiting: Math.max(1, Math.floor(limits.HTTP_MAX_CONNECTIONS / 2)),
  });
  return server;
}

/** Listens on host:port; resolves once listening. */
export function listen(server: Server, port: number, host: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/** What reads a request's body, told when the body deadline passes (body.ts answers 408 then). */
const bodyReaders = new WeakMap<IncomingMessage, (deadlineMs: number) => void>();

/** Registers `onTimeout` as the reader of `req`'s body until the returned function is called. */
export function onBodyDeadline(req: IncomingMessage, onTimeout: (deadlineMs: number) => void): () => void {
  bodyReaders.set(req, onTimeout);
  return () => {
    if (bodyReaders.get(req) === onTimeout) bodyReaders.delete(req);
  };
}

/** True when the request announces a body (RFC 9112 section 6.3). */
export function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

/** Waiting connections, oldest first, each with the timer that ends its wait. */
function guardWaitingConnections(server: Server, opts: { idleMs: number; bodyMs: number; maxWaiting: number }): void {
  const waiting = new Map<Socket, NodeJS.Timeout>();
  const served = (socket: Socket): void => {
    clearTimeout(waiting.get(socket));
    waiting.delete(socket);
  };
  const wait = (socket: Socket, ms: number, onTimeout: () => void): void => {
    served(socket);
    if (socket.destroyed) return;
    // Decided after the bytes that have already arrived are read: on a busy event loop a timer can fire before
    // the I/O of the same turn, which may hold the request head or the body's last chunk.
    const timer: NodeJS.Timeout = setTimeout(() => {
      setImmediate(() => {
        if (waiting.get(socket) !== timer) return;
        waiting.delete(socket);
        onTimeout();
      });
    }, ms);
    timer.unref();
    waiting.set(socket, timer);
    if (waiting.size > opts.maxWaiting) {
      const oldest = waiting.keys().next().value as Socket;
      served(oldest);
      oldest.destroy();
    }
  };
  const idle = (socket: Socket): void => wait(socket, opts.idleMs, () => socket.destroy());

  server.on('connection', (socket: Socket) => {
    idle(socket);
    socket.once('close', () => served(socket));
  });
  // Requests of a connection whose response is not done yet (more than one when a client pipelines).
  const inFlight = new WeakMap<Socket, number>();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const { socket } = req;
    inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1);
    // After the last response the connection waits for its next request (keep-alive), once its body is in.
    res.once('close', () => {
      const left = (inFlight.get(socket) ?? 1) - 1;
      inFlight.set(socket, left);
      if (left === 0 && req.complete) idle(socket);
    });
    if (!hasBody(req)) return served(socket);
    wait(socket, opts.bodyMs, () => {
      const reader = bodyReaders.get(req);
      if (!reader || res.headersSent) return socket.destroy();
      reader(opts.bodyMs);
      // The reader's 408 closes the connection; a client that does not read it is closed after the idle time.
      idle(socket);
    });
    req.once('end', () => (inFlight.get(socket) === 0 ? idle(socket) : served(socket)));
  });
}
