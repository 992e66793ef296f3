/**
 * Graceful stop (SPEC section 8). On SIGTERM/SIGINT: stop accepting connections, let the requests in
 * flight finish (idle keep-alive connections are closed as they become idle), run the stop hooks in the
 * order they were registered (the scheduler, the rate-limit counters...), close the database, exit 0.
 * Requests still running after SHUTDOWN_TIMEOUT_MS end the process with status 1.
 *
 * Hooks: whatever must stop before the database closes registers itself where it is built, e.g. in
 * compose.ts: `lifecycle.onStop('scheduler', () => scheduler.stop())`.
 */
import type { Server } from 'node:http';
import type { Logger } from './logger';

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

  /** Marks the stop and runs the hooks in order; one failing hook does not keep the others from running. */
  async stop(logger: Logger): Promise<void> {
    this.beginStop();
    for (const { name, fn } of this.hooks) {
      try {
        await fn();
        logger.info('stopped', { part: name });
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

/** Installs the SIGTERM/SIGINT handlers of the process. */
export function stopOnSignals(opts: {
  server: Server;
  lifecycle: Lifecycle;
  closeDatabase: () => Promise<void>;
  logger: Logger;
  timeoutMs: number;
}): void {
  const { server, lifecycle, logger } = opts;
  let started = false;
  const stop = async (signal: string) => {
    if (started) return;
    started = true;
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
      await opts.closeDatabase();
      logger.info('stopped', { part: 'database' });
    } catch (e) {
      logger.error('stopping failed', { error: String(e) });
      process.exit(1);
    }
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
