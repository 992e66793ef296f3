/**
 * A webhook receiver on loopback that checks every delivery's signature with the `standardwebhooks`
 * package's verifier (the reference implementation, not ours) and records what it got. Its answer is
 * switchable: 'ok' (204), 'fail' (500), 'gone' (410), 'hang' (never answers); `down()` closes the port
 * and `up()` listens on the same port again.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface Received {
  id: string;
  body: any;
  raw: string;
  at: number;
}

export type Mode = 'ok' | 'fail' | 'gone' | 'hang';

export class Receiver {
  readonly received: Received[] = [];
  /** Deliveries whose signature the verifier refused (must stay empty). */
  readonly rejected: Array<{ headers: IncomingMessage['headers']; raw: string; error: string }> = [];
  attempts = 0;
  mode: Mode = 'ok';
  port = 0;
  private server?: http.Server;
  private readonly hanging = new Set<ServerResponse>();
  private verifier?: Webhook;

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  setSecret(secret: string): void {
    this.verifier = new Webhook(secret);
  }

  async up(): Promise<void> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.attempts++;
        const raw = Buffer.concat(chunks).toString('utf8');
        if (this.mode === 'hang') {
          this.hanging.add(res);
          return;
        }
        if (this.mode === 'fail') return void res.writeHead(500).end();
        if (this.mode === 'gone') return void res.writeHead(410).end();
        try {
          if (!this.verifier) throw new Error('no secret set');
          const body = this.verifier.verify(raw, req.headers as Record<string, string>);
          this.received.push({ id: String(req.headers['webhook-id']), body, raw, at: Date.now() });
          res.writeHead(204).end();
        } catch (e) {
          this.rejected.push({ headers: req.headers, raw, error: String(e) });
          res.writeHead(400).end();
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', () => resolve()));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async down(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    for (const r of this.hanging) r.destroy();
    this.hanging.clear();
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  /** The distinct events received (first copy of each webhook-id), in arrival order. */
  distinct(): Received[] {
    const seen = new Set<string>();
    return this.received.filter((r) => (seen.has(r.id) ? false : (seen.add(r.id), true)));
  }

  async waitFor(pred: (r: Receiver) => boolean, ms = 20_000): Promise<void> {
    const until = Date.now() + ms;
    while (!pred(this)) {
      if (Date.now() > until) throw new Error(`receiver: condition not met within ${ms} ms; got ${JSON.stringify(this.received.map((r) => [r.body.type, r.body.revision]))}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Polls `fn` until it returns a truthy value. */
export async function eventually<T>(fn: () => Promise<T>, ms = 20_000): Promise<NonNullable<T>> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > until) throw new Error(`condition not met within ${ms} ms; last value ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
