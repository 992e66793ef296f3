/**
 * Reconnect watchdog. Seen in the outage tests (about one restart in five of the embedded FerretDB, and
 * reproduced with a bare driver client): after the server comes back, the driver's monitor can stay on
 * "connection N closed" for good, so every operation fails server selection although a new client connects
 * at once. When pings have failed for `afterMs` and a fresh client reaches the server, the client is closed
 * and connected again. It is the same MongoClient object, so every Db and Collection handle keeps working;
 * operations caught in between fail as "database unavailable" (503) like the outage itself.
 */
import { MongoClient } from 'mongodb';
import type { Logger } from '../logger';

export interface WatchdogOptions {
  /** How often the client is pinged. */
  intervalMs?: number;
  /** How long pings must have failed before a reconnect is tried. */
  afterMs?: number;
}

export class ReconnectWatchdog {
  private timer?: NodeJS.Timeout;
  private failingSince?: number;
  private busy = false;
  private stopped = false;

  constructor(
    private readonly client: MongoClient,
    private readonly uri: string,
    private readonly logger: Pick<Logger, 'warn' | 'info'>,
    private readonly opts: WatchdogOptions = {},
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs ?? 2000);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  private async ping(client: MongoClient): Promise<boolean> {
    try {
      await client.db('admin').command({ ping: 1 });
      return true;
    } catch {
      return false;
    }
  }

  private async tick(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      if (await this.ping(this.client)) {
        this.failingSince = undefined;
        return;
      }
      this.failingSince ??= Date.now();
      if (Date.now() - this.failingSince < (this.opts.afterMs ?? 6000)) return;
      const fresh = new MongoClient(this.uri, { serverSelectionTimeoutMS: 2000, connectTimeoutMS: 2000 });
      const reachable = await this.ping(fresh);
      await fresh.close().catch(() => undefined);
      if (!reachable || this.stopped) return;
      this.logger.warn('database reachable again but the client is stuck; reconnecting it');
      await this.client.close().catch(() => undefined);
      if (this.stopped) return;
      await this.client.connect();
      this.failingSince = undefined;
      this.logger.info('database client reconnected');
    } catch (e) {
      this.logger.warn('database reconnect failed; will retry', { err: (e as Error).message });
    } finally {
      this.busy = false;
    }
  }
}
