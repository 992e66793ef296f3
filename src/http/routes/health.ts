/**
 * Health routes (SPEC sections 5-7): GET /check_container_health/:id probes the stored registry now (stored
 * URL and credentials only), stores the result through the one writer and returns the stored health;
 * GET /health_report returns the latest report.
 */
import { Router } from 'express';
import type { HealthChecker } from '../../health/check';
import type { HealthReporter } from '../../health/report';
import { NotFoundError } from '../../errors';
import type { RegistryService } from '../../registries/service';
import type { Access } from '../auth';

export function healthRoutes(deps: { registries: RegistryService; checker: HealthChecker; reporter: HealthReporter; can: Access['can'] }): Router {
  const r = Router();
  const { can } = deps;

  r.get('/check_container_health/:id', can('probe'), async (req, res) => {
    const doc = await deps.registries.get(String(req.params.id));
    const { write } = await deps.checker.check(doc);
    if (!write.health) throw new NotFoundError(`No registry with id "${doc._id}" (it was deleted during the check).`);
    res.json(write.health);
  });

  r.get('/health_report', can('read'), async (_req, res) => {
    res.json(await deps.reporter.latest());
  });

  return r;
}
