/**
 * GET /peers (SPEC 15, role reader): the state of every peer catalog this one follows.
 */
import { Router } from 'express';
import type { Federation } from '../../federation';
import type { Access } from '../auth';
import { type ApiPaths, json, op, ref } from '../api-doc';

export function peersRoutes(deps: { federation: Federation; can: Access['can'] }): Router {
  const r = Router();
  r.get('/peers', deps.can('read'), async (_req, res) => {
    res.json(await deps.federation.status());
  });
  return r;
}

/** Peer catalogs. (OpenAPI; assembled by src/openapi.ts) */
export const peersApi: ApiPaths = {
  '/peers': {
    get: op('read', 'The peer catalogs this one follows (PEERS) and the state of each', {
      operationId: 'listPeers',
      responses: { '200': json({ type: 'array', items: ref('PeerStatus') }, 'One item per peer, in PEERS order.') },
    }),
  },
};
