/**
 * Health routes (SPEC sections 5-7): GET /check_container_health/:id probes the stored registry now (stored
 * URL and credentials only), stores the result through the one writer and returns the stored health;
 * GET /health_report returns the latest report; GET /container_registry/:id/health_history returns one
 * registry's recorded probes in a window (the status page's chart).
 */
import { Router } from 'express';
import type { HealthChecker } from '../../health/check';
import type { HealthHistoryReader } from '../../health/history';
import type { HealthReporter } from '../../health/report';
import { NotFoundError } from '../../errors';
import { refuseMirrored, type RegistryService } from '../../registries/service';
import type { Access } from '../auth';
import { type ApiPaths, idParam, json, op, problem, ref } from '../api-doc';
import { HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT } from '../../health/history';

export function healthRoutes(deps: {
  registries: RegistryService;
  checker: HealthChecker;
  reporter: HealthReporter;
  history: HealthHistoryReader;
  can: Access['can'];
}): Router {
  const r = Router();
  const { can } = deps;

  r.get('/check_container_health/:id', can('probe'), async (req, res) => {
    const doc = await deps.registries.get(String(req.params.id));
    refuseMirrored(doc, 'checked');
    const { write } = await deps.checker.check(doc);
    if (!write.health) throw new NotFoundError(`No registry with id "${doc._id}" (it was deleted during the check).`);
    res.json(write.health);
  });

  r.get('/health_report', can('read'), async (_req, res) => {
    res.json(await deps.reporter.latest());
  });

  r.get('/container_registry/:id/health_history', can('read'), async (req, res) => {
    const window = deps.history.window(req.query as Record<string, unknown>);
    // 404 for an id the catalog does not hold (its leftover history is not served).
    const doc = await deps.registries.get(String(req.params.id));
    res.json(await deps.history.list(doc._id, window));
  });

  return r;
}

/** Probes, probe history and the health report. (OpenAPI; assembled by src/openapi.ts) */
export const healthApi: ApiPaths = {
  '/check_container_health/{id}': {
    parameters: [idParam],
    get: op('probe', 'Probe the registry now (GET /v2/) and store the result', {
      operationId: 'checkRegistryHealth',
      responses: { '200': json(ref('ContainerRegistryHealth'), 'The probe result.'), '404': problem('No such entry.'), '409': problem('The entry is mirrored from a peer, which probes it.') },
    }),
  },
  '/container_registry/{id}/health_history': {
    parameters: [idParam],
    get: op('read', 'One registry’s recorded probes in a window, oldest first (the status page’s chart)', {
      operationId: 'getRegistryHealthHistory',
      parameters: [
        { name: 'since', in: 'query', description: 'ISO-8601 date-time, start of the window; default: the whole kept history (HEALTH_HISTORY_DAYS).', schema: { type: 'string', format: 'date-time' } },
        { name: 'limit', in: 'query', description: 'Most probes returned (the newest when the window holds more; then `truncated` is true).', schema: { type: 'integer', minimum: 1, maximum: HISTORY_MAX_LIMIT, default: HISTORY_DEFAULT_LIMIT } },
      ],
      responses: {
        '200': json(ref('ContainerRegistryHealthHistory'), 'The probes of the window.'),
        '400': problem('`since` or `limit` is invalid.'),
        '404': problem('No such entry.'),
      },
    }),
  },
  '/health_report': {
    get: op('read', 'The latest health report', { operationId: 'getHealthReport', responses: { '200': json({ type: 'object' }, 'The latest report.') } }),
  },
};
