/**
 * GET /peers (SPEC 15, role reader): the state of every peer catalog this one follows.
 */
import { Router } from 'express';
import type { Federation } from '../../federation';
import type { Access } from '../auth';

export function peersRoutes(deps: { federation: Federation; can: Access['can'] }): Router {
  const r = Router();
  r.get('/peers', deps.can('read'), async (_req, res) => {
    res.json(await deps.federation.status());
  });
  return r;
}
