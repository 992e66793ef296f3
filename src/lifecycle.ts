/**
 * Graceful stop (SPEC section 8). On SIGTERM/SIGINT, within a few seconds whatever the clients do:
 *   1. from that moment every response says `Connection: close` (also those of requests in flight), so a
 *      client on a keep-alive connection (a follower's long polls) goes away instead of sending its next
 *      request on it; the "begin stop" hooks run: pending long polls answer at once with what there is,
 *      change-feed streams end (clients resume elsewhere with Last-Event-ID);
 *   2. stop accepting connections and let the requests in flight finish (idle connections are closed);
 *   3. run the stop hooks in the order they were registered (the writers first, then the change feed),
 *      each waited for at most STOP_HOOK_WAIT_MS and all of them at most STOP_HOOKS_WAIT_MS: a part stuck on
 *      a database that is gone must not hold the stop (it is started, not awaited);
 *   4. close the database (at most DATABASE_CLOSE_WAIT_MS), exit 0.
 * Requests still running after SHUTDOWN_TIMEOUT_MS end the process with status 1.
 *
 * Hooks: whatever must stop before the database closes registers itself where it is built, e.g. in
 * compose.ts: `lifecycle.onStop('scheduler', () => scheduler.stop())`.
 */
import type { Server, ServerResponse } from 'node:http';
import type { Logger } from './logger';

/** The longest the stop waits for one hook. */
export const STOP_HOOK_WAIT_MS = 1000;
/** The longest the stop waits for all hooks together. */
export const STOP_HOOKS_WAIT_MS = 2500;
/** The longest the stop waits for the database to close. */
export const DATABASE_CLOSE_WAIT_MS = 1500;

/** Resolves true when `p` settles within `ms` (rejecting as it does), false when it takes longer. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    // The race also handles a rejection that comes after the wait: it cannot end the process as unhandled.
    return await Promise.race([p.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

export class Lifecycle {
  private readonly hooks: Array<{ name: string; fn: () => unknown }> = [];
  private readonly beginHooks: Array<() => void> = [];
  private stoppingFlag = false;

  /** True once a stop began; /readyz answers 503 from then on. */
  get stopping(): boolean {
    return this.stoppingFlag;
  }

  /** Registers work to run after requests drained and before the database closes. */
  onStop(name: string, fn: () => unknown): void {
    this.hooks.push({ name, fn });
  }

  /**
   * Marks the stop and runs the hooks in order; one failing or slow hook does not keep the others from
   * running: each is waited for at most `perHookMs`, all together at most `totalMs` (later ones are still
   * started).
   */
  async stop(logger: Logger, perHookMs = STOP_HOOK_WAIT_MS, totalMs = STOP_HOOKS_WAIT_MS): Promise<void> {
    this.beginStop();
    const until = Date.now() + totalMs;
    for (const { name, fn } of this.hooks) {
      const waitMs = Math.max(0, Math.min(perHookMs, until - Date.now()));
      try {
        if (await settlesWithin(Promise.resolve().then(fn), waitMs)) logger.info('stopped', { part: name });
        else logger.warn('stop: not waiting any longer for this part', { part: name, waited_ms: waitMs });
      } catch (err) {
        logger.error('stop hook failed', { part: name, err });
      }
    }
  }

  /** Registers work to run as soon as a stop begins: ending requests that would never finish on their own (change-feed streams). */
  onBeginStop(fn: () => void): void {
    this.beginHooks.push(fn);
  }

  beginStop(): void {
    if (this.stoppingFlag) return;
    this.stoppingFlag = true;
    for (const fn of this.beginHooks) fn();
  }
}

/** Stops accepting and resolves once every connection of the server is closed. */
export function drain(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Connections kept alive after their last response would hold close() open until their timeout.
    server.closeIdleConnections();
    const sweep = setInterval(() => server.closeIdleConnections(), 50);
    sweep.unref();
    server.once('close', () => clearInterval(sweep));
  });
}

/**
 * Marks every response `Connection: close` once `closing()` is called: those of requests in flight then
 * (unless already sent) and every later one. Returns `closing`.
 */
export function closeConnectionsOnStop(server: Server): () => void {
  const inFlight = new Set<ServerResponse>();
  let closing = false;
  const mark = (res: ServerResponse) => {
    if (!res.headersSent) res.setHeader('Connection', 'close');
  };
  server.prependListener('request', (_req, res: ServerResponse) => {
    if (closing) return mark(res);
    inFlight.add(res);
    res.once('close', () => inFlight.delete(res));
  });
  return () => {
    closing = true;
    for (const res of inFlight) mark(res);
    inFlight.clear();
  };
}

/** Installs the SIGTERM/SIGINT handlers of the process. */
export function stopOnSignals(opts: {
  server: Server;
  lifecycle: Lifecycle;
  closeDatabase: () => Promise<void>;
  logger: Logger;
  timeoutMs: number;
}): void {
  const { server, lifecycle, logger } = opts;
  const closeConnections = closeConnectionsOnStop(server);
  let started = false;
  const stop = async (signal: string) => {
    if (started) return;
    started = true;
    closeConnections();
    lifecycle.beginStop();
    // The listener is closed before the line is written: once "stopping" is logged, new connections are refused.
    const drained = drain(server);
    logger.info('stopping', { signal });
    setTimeout(() => {
      logger.error('forced exit: requests still running', { after_ms: opts.timeoutMs });
      process.exit(1);
    }, opts.timeoutMs).unref();
    try {
      await drained;
      logger.info('stopped', { part: 'http' });
      await lifecycle.stop(logger);
      if (await settlesWithin(opts.closeDatabase(), DATABASE_CLOSE_WAIT_MS)) logger.info('stopped', { part: 'database' });
      else logger.warn('stop: not waiting any longer for the database to close', { waited_ms: DATABASE_CLOSE_WAIT_MS });
    } catch (e) {
      logger.error('stopping failed', { error: String(e) });
      process.exit(1);
    }
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
