/**
 * The HTTP server around the Express app, with every connection bounded in time and number (issue 14):
 * - a connection that has not delivered a whole request head HTTP_CONNECTION_IDLE_TIMEOUT_MS after it
 *   opened is closed (Node's own header timeout only starts at the first byte, so a socket that never sends
 *   one was kept forever);
 * - such not-yet-speaking connections hold at most half of HTTP_MAX_CONNECTIONS: a newer one closes the
 *   oldest, so silent sockets can never take the slots that /healthz and real clients need;
 * - HTTP_MAX_CONNECTIONS caps connections per process (above it Node drops new ones at once);
 * - headersTimeout, requestTimeout and keepAliveTimeout are set from the config, checked every second.
 */
import { createServer, type RequestListener, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Config } from '../config';

export type ServerLimits = Pick<
  Config,
  'HTTP_MAX_CONNECTIONS' | 'HTTP_CONNECTION_IDLE_TIMEOUT_MS' | 'HTTP_HEADERS_TIMEOUT_MS' | 'HTTP_REQUEST_TIMEOUT_MS' | 'HTTP_KEEP_ALIVE_TIMEOUT_MS'
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
  closeSilentConnections(server, limits.HTTP_CONNECTION_IDLE_TIMEOUT_MS, Math.max(1, Math.floor(limits.HTTP_MAX_CONNECTIONS / 2)));
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

/** Connections that have not sent a whole request head yet, oldest first, with the timer that closes each. */
function closeSilentConnections(server: Server, timeoutMs: number, maxSilent: number): void {
  const silent = new Map<Socket, NodeJS.Timeout>();
  const forget = (socket: Socket): void => {
    const timer = silent.get(socket);
    if (timer === undefined) return;
    clearTimeout(timer);
    silent.delete(socket);
  };
  server.on('connection', (socket: Socket) => {
    const timer = setTimeout(() => {
      silent.delete(socket);
      socket.destroy();
    }, timeoutMs);
    timer.unref();
    silent.set(socket, timer);
    socket.once('close', () => forget(socket));
    if (silent.size > maxSilent) {
      const oldest = silent.keys().next().value as Socket;
      forget(oldest);
      oldest.destroy();
    }
  });
  server.on('request', (req) => forget(req.socket));
}
