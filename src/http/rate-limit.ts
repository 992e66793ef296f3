/**
 * Rate limits (SPEC section 8): express-rate-limit with the IETF draft-8 `RateLimit` / `RateLimit-Policy`
 * headers, counted in the database so that all replicas share one budget per client (rate-limit-store.ts).
 *
 * A client is its API key (by the key's non-secret id), or its address in protected mode. Two budgets:
 * `default` over all protected routes (RATE_LIMIT_MAX per window), and a tighter `probe` one on
 * `GET /check_container_health/:id` (PROBE_RATE_LIMIT_MAX), since every call sends traffic to a registry.
 * Over the budget: 429 problem+json with `Retry-After`, through the one error mapper.
 */
import type { Db } from 'mongodb';
import type { RequestHandler } from 'express';
import { ipKeyGenerator, rateLimit } from 'express-rate-limit';
import type { Config } from '../config';
import { TooManyRequestsError } from '../errors';
import type { Logger } from '../logger';
import { principalOf } from './auth';
import { SharedWindowStore } from './rate-limit-store';

export interface RateLimits {
  /** Every protected route. */
  all: RequestHandler;
  /** On-demand probes. */
  probe: RequestHandler;
  /** Stops the sync timers and sends the counts still held locally. */
  shutdown(): Promise<void>;
}

const pass: RequestHandler = (_req, _res, next) => next();

export async function createRateLimits(
  config: Pick<Config, 'RATE_LIMIT_WINDOW_MS' | 'RATE_LIMIT_MAX' | 'PROBE_RATE_LIMIT_MAX' | 'RATE_LIMIT_SYNC_MS'>,
  db: Db,
  logger: Logger,
): Promise<RateLimits> {
  const stores: SharedWindowStore[] = [];
  const limiter = (name: string, limit: number): RequestHandler => {
    if (limit === 0) return pass;
    const store = new SharedWindowStore(db, { prefix: `${name}:`, syncMs: config.RATE_LIMIT_SYNC_MS, logger });
    stores.push(store);
    return rateLimit({
      windowMs: config.RATE_LIMIT_WINDOW_MS,
      limit,
      identifier: name,
      standardHeaders: 'draft-8',
      legacyHeaders: false,
      store,
      keyGenerator: (req, res) => {
        const who = principalOf(res);
        return who && who.id !== 'loopback' ? `key:${who.id}` : `ip:${ipKeyGenerator(req.ip ?? req.socket.remoteAddress ?? '')}`;
      },
      handler: (_req, res, next) => {
        const seconds = res.getHeader('Retry-After');
        next(new TooManyRequestsError(`Rate limit "${name}" exceeded: ${limit} requests per ${config.RATE_LIMIT_WINDOW_MS / 1000} s; retry in ${String(seconds ?? 'a few')} seconds.`));
      },
      logger: { error: (...args) => logger.error('rate limit store error', { detail: args }), warn: (...args) => logger.warn('rate limit warning', { detail: args }) },
    });
  };
  const limits: RateLimits = {
    all: limiter('default', config.RATE_LIMIT_MAX),
    probe: limiter('probe', config.PROBE_RATE_LIMIT_MAX),
    shutdown: async () => {
      await Promise.all(stores.map((s) => s.shutdown()));
    },
  };
  await Promise.all(stores.map((s) => s.ensureIndexes()));
  return limits;
}
