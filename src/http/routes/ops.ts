/**
 * Operations routes: liveness, readiness, the OpenAPI document (all three unauthenticated, for probes and
 * tooling) and the Prometheus metrics (behind an API key).
 */
import { Router, type RequestHandler } from 'express';
import type { Db } from 'mongodb';
import { ServiceUnavailableError } from '../../errors';
import { metricsText } from '../../observability/metrics';
import type { Permission } from '../auth';
import { type ApiPaths, json, op, problem } from '../api-doc';

export interface OpsDeps {
  db: Db;
  /** Built once at startup. */
  openapi: object;
  isStopping: () => boolean;
  /** How long /readyz waits for the database's answer to `ping`. */
  readyTimeoutMs?: number;
}

/** Resolves when the database answers `ping` within the time limit; rejects otherwise. */
async function ping(db: Db, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  const answer = db.command({ ping: 1 });
  answer.catch(() => undefined);
  try {
    await Promise.race([answer, late]);
  } finally {
    clearTimeout(timer);
  }
}

export function publicOpsRoutes(deps: OpsDeps): Router {
  const r = Router();
  const document = JSON.stringify(deps.openapi);

  r.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  r.get('/readyz', async (_req, res) => {
    if (deps.isStopping()) throw new ServiceUnavailableError('The service is stopping.');
    try {
      await ping(deps.db, deps.readyTimeoutMs ?? 1000);
    } catch (e) {
      throw new ServiceUnavailableError(`The database is unreachable: ${(e as Error).message}.`);
    }
    res.json({ status: 'ready' });
  });

  r.get('/openapi.json', (_req, res) => {
    res.type('application/json').send(document);
  });

  return r;
}

/** `extra`: text appended to the process metrics (the per-registry series, computed from the catalog view). */
export function metricsRoutes(can: (p: Permission) => RequestHandler, extra?: () => Promise<string>): Router {
  const r = Router();
  r.get('/metrics', can('read'), async (_req, res) => {
    const { contentType, body } = await metricsText();
    res.type(contentType).send(extra ? body + (await extra()) : body);
  });
  return r;
}

/** Operations: metrics, liveness, readiness, this document. (OpenAPI; assembled by src/openapi.ts) */
export const opsApi: ApiPaths = {
  '/metrics': {
    get: op('read', 'Prometheus metrics', {
      operationId: 'getMetrics',
      responses: { '200': { description: 'Prometheus text format.', content: { 'text/plain': { schema: { type: 'string' } } } } },
    }),
  },
  '/healthz': {
    get: op(null, 'Liveness', { operationId: 'liveness', responses: { '200': json({ type: 'object' }, 'The process is alive.') } }),
  },
  '/readyz': {
    get: op(null, 'Readiness: the database answers', {
      operationId: 'readiness',
      responses: { '200': json({ type: 'object' }, 'Ready.'), '503': problem('The database is unreachable, or the service is stopping.') },
    }),
  },
  '/openapi.json': {
    get: op(null, 'This document', { operationId: 'openapi', responses: { '200': json({ type: 'object' }, 'OpenAPI 3.1.') } }),
  },
};
