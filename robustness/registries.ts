/**
 * Small loopback registries for the sweeps to probe (127.0.0.1 only): one that answers the /v2/ check, one
 * that asks for credentials, one that fails, one that is slow. Each slot of the run points its entries at one
 * of them, so probe results of every kind land on the entries while clients write them.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Behaviour = 'healthy' | 'auth' | 'failing' | 'slow';
export const BEHAVIOURS: readonly Behaviour[] = ['healthy', 'auth', 'failing', 'slow'];

export interface FakeRegistry {
  url: string;
  behaviour: Behaviour;
  requests(): number;
  close(): Promise<void>;
}

function answer(behaviour: Behaviour, res: import('node:http').ServerResponse): void {
  const json = { 'Content-Type': 'application/json', 'Docker-Distribution-API-Version': 'registry/2.0' };
  switch (behaviour) {
    case 'healthy':
      res.writeHead(200, json).end('{}');
      return;
    case 'auth':
      res.writeHead(401, { ...json, 'WWW-Authenticate': 'Basic realm="robustness"' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    case 'failing':
      res.writeHead(500, { 'Content-Type': 'text/plain' }).end('internal error');
      return;
    case 'slow':
      setTimeout(() => res.writeHead(200, json).end('{}'), 800).unref();
  }
}

export async function startFakeRegistry(behaviour: Behaviour): Promise<FakeRegistry> {
  let count = 0;
  const server: Server = createServer((req, res) => {
    count++;
    req.resume();
    if (req.url === '/v2/' || req.url === '/v2') answer(behaviour, res);
    else res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"errors":[{"code":"NAME_UNKNOWN"}]}');
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    behaviour,
    requests: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
