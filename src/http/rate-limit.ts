/**
 * Rate limits (SPEC section 8): express-rate-limit with the IETF draft-8 `RateLimit` / `RateLimit-Policy`
 * headers, counted in the database so that all replicas share one budget per client (rate-limit-store.ts).
 *
 * A client is its API key (by the key's non-secret id), or its address in protected mode. Two budgets:
 * `default` over all protected routes (RATE_LIMIT_MAX per window), and a tighter `probe` one on
 * `GET /check_container_health/:id` (PROBE_RATE_LIMIT_MAX), since every call sends traffic to a registry.
 * A third, `pull-credentials` (PULL_CREDENTIALS_RATE_LIMIT_MAX per key), bounds how many stored passwords one
 * key can collect through `POST /pull-credentials`.
 * Over the budget: 429 problem+json with `Retry-After`, through the one error mapper.
 */
import type { Db } from 'mongodb';
import type { Request, RequestHandler } from 'express';
import { ipKeyGenerator, rateLimit, type Options } from 'express-rate-limit';
import type { Config } from '../config';
import { TooManyRequestsError, UnauthorizedError } from '../errors';
import type { Logger } from '../logger';
import { principalOf } from './auth';
import { SharedWindowStore } from './rate-limit-store';

export interface RateLimits {
  /** Every protected route. */
  all: RequestHandler;
  /** On-demand probes. */
  probe: RequestHandler;
  /** Disclosures of stored credentials (POST /pull-credentials). */
  pullCredentials: RequestHandler;
  /**
   * Wraps `authenticate`: each 401 counts against the client's address (AUTH_FAILURE_LIMIT per window, shared
   * by the replicas); over that budget, a request without a valid key gets 429 + Retry-After instead of the
   * verdict on its key, while a valid key from the same address is still served.
   */
  guardAuthentication(authenticate: RequestHandler): RequestHandler;
  /** Stops the sync timers and sends the counts still held locally. */
  shutdown(): Promise<void>;
}

const pass: RequestHandler = (_req, _res, next) => next();
/** From this share of the default budget on, a client's requests are decided on the database, one round trip each. */
const NEAR_LIMIT = 0.9;

export async function createRateLimits(
  config: Pick<Config, 'RATE_LIMIT_WINDOW_MS' | 'RATE_LIMIT_MAX' | 'PROBE_RATE_LIMIT_MAX' | 'PULL_CREDENTIALS_RATE_LIMIT_MAX' | 'RATE_LIMIT_SYNC_MS' | 'AUTH_FAILURE_LIMIT'>,
  db: Db,
  logger: Logger,
): Promise<RateLimits> {
  const stores: SharedWindowStore[] = [];
  /** `strictFrom`: the share of the budget from which each request is decided on the database (rate-limit-store.ts). */
  const limiter = (name: string, limit: number, strictFrom: number): RequestHandler => {
    if (limit === 0) return pass;
    const store = new SharedWindowStore(db, { prefix: `${name}:`, syncMs: config.RATE_LIMIT_SYNC_MS, logger, strictFrom });
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
        return who && who.id !== 'loopback' ? `key:${who.id}` : clientAddress(req);
      },
      handler: (_req, res, next) => {
        const seconds = res.getHeader('Retry-After');
        next(new TooManyRequestsError(`Rate limit "${name}" exceeded: ${limit} requests per ${config.RATE_LIMIT_WINDOW_MS / 1000} s; retry in ${String(seconds ?? 'a few')} seconds.`));
      },
      logger: { error: (...args) => logger.error('rate limit store error', { detail: args }), warn: (...args) => logger.warn('rate limit warning', { detail: args }) },
    });
  };
  const clientAddress = (req: Request) => `ip:${ipKeyGenerator(req.ip ?? req.socket.remoteAddress ?? '')}`;
  const limit = config.AUTH_FAILURE_LIMIT;
  const failures = limit === 0 ? undefined : new SharedWindowStore(db, { prefix: 'auth-failures:', syncMs: config.RATE_LIMIT_SYNC_MS, logger });
  if (failures) {
    failures.init({ windowMs: config.RATE_LIMIT_WINDOW_MS } as Options);
    stores.push(failures);
  }
  const guardAuthentication = (authenticate: RequestHandler): RequestHandler => {
    if (!failures) return authenticate;
    const store = failures;
    return (req, res, next) => {
      let passed = false;
      try {
        void authenticate(req, res, () => {
          passed = true;
        });
      } catch (e) {
        if (!(e instanceof UnauthorizedError)) throw e;
        const key = clientAddress(req);
        const seen = store.get(key);
        if (seen && seen.totalHits >= limit) {
          const seconds = Math.max(1, Math.ceil(((seen.resetTime?.getTime() ?? Date.now()) - Date.now()) / 1000));
          const tooMany = new TooManyRequestsError(`Too many failed authentications from this address: ${limit} per ${config.RATE_LIMIT_WINDOW_MS / 1000} s; retry in ${seconds} seconds with a valid API key.`);
          tooMany.headers['Retry-After'] = String(seconds);
          throw tooMany;
        }
        store.increment(key);
        throw e;
      }
      if (passed) next();
    };
  };
  const limits: RateLimits = {
    all: limiter('default', config.RATE_LIMIT_MAX, NEAR_LIMIT),
    // Each probe sends traffic to a registry: every one is decided on the database, so replicas never over-admit.
    probe: limiter('probe', config.PROBE_RATE_LIMIT_MAX, 0),
    // Each answer discloses passwords: decided on the database too.
    pullCredentials: limiter('pull-credentials', config.PULL_CREDENTIALS_RATE_LIMIT_MAX, 0),
    guardAuthentication,
    shutdown: async () => {
      await Promise.all(stores.map((s) => s.shutdown()));
    },
  };
  await Promise.all(stores.map((s) => s.ensureIndexes()));
  return limits;
}
