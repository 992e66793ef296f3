/**
 * Loopback servers that play many registries each: registry `i` lives under the path prefix `/r<i>`
 * (probed as `/r<i>/v2/`) on one of a few ports. A registry whose index is in `hanging` accepts the
 * request and never answers; the others answer like distribution does.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface FakeRegistries {
  /** Public URL of registry `i`. */
  urlOf(i: number): string;
  /** Requests answered and requests left hanging so far. */
  counts(): { answered: number; hanging: number };
  close(): Promise<void>;
}

const PREFIX = /^\/r(\d+)\/v2\/?$/;

export async function startFakeRegistries(opts: { servers: number; hanging: (i: number) => boolean }): Promise<FakeRegistries> {
  let answered = 0;
  let hanging = 0;
  const sockets = new Set<Socket>();
  const servers: Server[] = [];
  const ports: number[] = [];
  for (let s = 0; s < opts.servers; s++) {
    const server = createServer((req, res) => {
      const m = PREFIX.exec(req.url ?? '');
      if (!m) {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
        return;
      }
      if (opts.hanging(Number(m[1]))) {
        hanging++;
        return;
      }
      answered++;
      res.writeHead(200, { 'Content-Type': 'application/json', 'Docker-Distribution-API-Version': 'registry/2.0' }).end('{}');
    });
    server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
    servers.push(server);
    ports.push((server.address() as AddressInfo).port);
  }
  return {
    urlOf: (i) => `http://127.0.0.1:${ports[i % ports.length]}/r${i}`,
    counts: () => ({ answered, hanging }),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    },
  };
}
