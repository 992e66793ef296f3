/**
 * Builds the Express application from its dependencies (no globals, no process.env): request ids and
 * access logs, the routes, 404/405 for everything else, and the one problem+json error mapper.
 */
import { randomUUID } from 'node:crypto';
import express, { type Express, type RequestHandler } from 'express';
import type { TrustProxy } from '../config';
import { MethodNotAllowedError, NotFoundError } from '../errors';
import type { Logger } from '../logger';
import { httpMetrics } from '../observability/metrics';
import type { RegistryService } from '../registries/service';
import { knownRoutes } from './api-paths';
import { principalOf, type Access } from './auth';
import { problemMiddleware } from './problem';
import type { RateLimits } from './rate-limit';
import { registryRoutes } from './routes/registries';

export interface AppDeps {
  logger: Logger;
  registries: RegistryService;
  bodyLimit: number;
  /** Express `trust proxy` (config TRUST_PROXY): which hops may name the client in X-Forwarded-For. */
  trustProxy?: TrustProxy;
  /** Extra routers mounted before the catch-all (health, reports, metrics...). */
  extraRoutes?: RequestHandler[];
  /** API keys and roles: every route after `publicRoutes` needs a key (or a loopback client in protected mode). */
  access: Access;
  /** Liveness, readiness, OpenAPI: mounted before authentication. */
  publicRoutes?: RequestHandler[];
  /** Budgets per client, shared by the replicas; absent: no limits. */
  rateLimits?: Pick<RateLimits, 'all' | 'probe' | 'pullCredentials' | 'guardAuthentication'>;
}

/** Logged at start with TRUST_PROXY=true (compose.ts). */
export const TRUST_ALL_PROXIES_WARNING =
  'TRUST_PROXY=true trusts every X-Forwarded-For hop, so a client chooses the address the failed-authentication budget and the per-address rate limits count; set TRUST_PROXY to the number of proxies in front (1 behind one reverse proxy or ingress) or to their addresses';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

function requestContext(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    const given = req.get('X-Request-Id');
    const id = given && REQUEST_ID.test(given) ? given : randomUUID();
    res.locals.requestId = id;
    res.setHeader('X-Request-Id', id);
    res.on('finish', () => {
      const who = principalOf(res);
      // Only 5xx are errors; a client's mistake (4xx) is an ordinary request line.
      logger.log(res.statusCode >= 500 ? 'error' : 'info', 'request', {
        request_id: id,
        method: req.method,
        route: (req.route?.path as string | undefined) ?? null,
        path: req.path,
        status: res.statusCode,
        latency_ms: Math.round(Number(process.hrtime.bigint() - started) / 1e4) / 100,
        principal: who ? `${who.role}:${who.id}` : null,
      });
    });
    next();
  };
}

/** Known paths and their methods, for 405 + Allow: the documented ones (test/ops/endpoints.test.ts checks every route is there). */
export const KNOWN: Array<[RegExp, string[]]> = knownRoutes();

export function buildApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  const trust = deps.trustProxy ?? false;
  app.set('trust proxy', Array.isArray(trust) ? [...trust] : trust);
  app.set('query parser', 'simple');
  app.use(requestContext(deps.logger));
  app.use(httpMetrics());
  for (const open of deps.publicRoutes ?? []) app.use(open);
  // Everything below needs a key; routes then say what they need: can('read'), can('write')...
  const { can } = deps.access;
  app.use(deps.rateLimits ? deps.rateLimits.guardAuthentication(deps.access.authenticate) : deps.access.authenticate);
  if (deps.rateLimits) {
    app.use(deps.rateLimits.all);
    app.use('/check_container_health', deps.rateLimits.probe);
    app.use('/pull-credentials', deps.rateLimits.pullCredentials);
  }
  // The catalog's routes first: the hottest (GET by id) is then matched before a dozen other routers are tried.
  app.use(registryRoutes(deps.registries, { bodyLimit: deps.bodyLimit, can }));
  for (const extra of deps.extraRoutes ?? []) app.use(extra);
  app.use((req) => {
    const known = KNOWN.find(([re]) => re.test(req.path));
    if (known) throw new MethodNotAllowedError(`${req.method} is not supported on ${req.path}.`, known[1]);
    throw new NotFoundError(`No route for ${req.method} ${req.path}.`);
  });
  app.use(problemMiddleware(deps.logger));
  return app;
}
