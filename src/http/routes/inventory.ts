/**
 * Inventory routes (SPEC 19): GET /container_registry/:id/inventory pages through what the registry's last
 * storage refresh saw (read from the inventory's repository); POST /container_registry/:id/refresh_storage runs
 * that refresh now (one at a time per entry across replicas: 202 while another one runs; 409 for an entry
 * mirrored from a peer) and answers its result, or 202 when it takes longer than `wait` seconds; GET /images
 * says which registries hold an image (from memory, like /resolve).
 */
import { Router, type RequestHandler } from 'express';
import type { ImagesResult, InventoryPage as InventoryPageBody, StorageRefreshResult } from '../../generated';
import type { StorageRefresher } from '../../health/refresh';
import { encodeInventoryCursor, findImage, parseInventoryQuery, readPage, type InventoryIndex, type InventoryRepository } from '../../inventory';
import { InputError } from '../../errors';
import { integer, single } from '../../lib/query-params';
import type { Logger } from '../../logger';
import { originPeer } from '../../registries/model';
import { refuseMirrored, type RegistryService } from '../../registries/service';
import type { PrefixIndex } from '../../resolve';
import type { Access } from '../auth';
import { type ApiPaths, idParam, json, op, problem, ref } from '../api-doc';
import { indexReady, parseImage, type IndexReadiness } from './resolve';

/** How long POST refresh_storage waits for its refresh by default, and at most (seconds). */
const WAIT_DEFAULT_S = 30;
const WAIT_MAX_S = 300;

export function inventoryRoutes(
  deps: {
    registries: RegistryService;
    repository: InventoryRepository;
    refresher: StorageRefresher;
    resolver: PrefixIndex;
    inventories: InventoryIndex;
    can: Access['can'];
    logger: Logger;
    /** The probe rate limit (each refresh sends traffic to a registry). */
    probeLimit?: RequestHandler;
  } & IndexReadiness,
): Router {
  const r = Router();
  const { can } = deps;

  r.get('/container_registry/:id/inventory', can('read'), async (req, res) => {
    const query = req.query as Record<string, unknown>;
    const q = parseInventoryQuery(query);
    const doc = await deps.registries.get(String(req.params.id));
    // An entry mirrored from a peer has no inventory here (the peer keeps it).
    const page = originPeer(doc) === undefined ? await readPage(deps.repository, doc._id, q) : { state: null, items: [], next: null };
    if (page.next) {
      const next = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (k !== 'cursor' && typeof v === 'string') next.set(k, v);
      next.set('cursor', encodeInventoryCursor(page.next));
      res.setHeader('Link', `</container_registry/${encodeURIComponent(doc._id)}/inventory?${next.toString()}>; rel="next"`);
    }
    const s = page.state;
    const body: InventoryPageBody = {
      container_registry_id: doc._id,
      observed_at: s?.observed_at ?? null,
      truncated: s?.truncated ?? false,
      repository_count: s?.repository_count ?? 0,
      tag_count: s?.tag_count ?? 0,
      items: page.items,
    };
    res.json(body);
  });

  r.post('/container_registry/:id/refresh_storage', can('probe'), ...(deps.probeLimit ? [deps.probeLimit] : []), async (req, res) => {
    const query = req.query as Record<string, unknown>;
    const unknown = Object.keys(query).filter((k) => k !== 'wait');
    if (unknown.length > 0) throw new InputError(`Unknown query parameters: ${unknown.join(', ')}.`, unknown.map((p) => ({ path: p, message: 'unknown query parameter; use wait' })));
    const waitS = integer(query, 'wait', 0, WAIT_MAX_S, WAIT_DEFAULT_S);
    const doc = await deps.registries.get(String(req.params.id));
    refuseMirrored(doc, 'refreshed');
    const running = deps.refresher.refresh(doc);
    // A refresh that outlives the wait goes on; its failure is only logged (the answer was given).
    running.catch((e: unknown) => deps.logger.error('storage refresh failed', { registry_id: doc._id, err: e }));
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<'waited'>((resolve) => (timer = setTimeout(() => resolve('waited'), waitS * 1000)));
    const outcome = await Promise.race([running, waited]).finally(() => clearTimeout(timer));
    if (outcome === 'waited' || outcome.kind === 'busy') {
      const body: StorageRefreshResult = { container_registry_id: doc._id, status: 'running' };
      res.status(202).setHeader('Location', `/container_registry/${encodeURIComponent(doc._id)}/inventory`);
      res.json(body);
      return;
    }
    const inv = outcome.inventory;
    const body: StorageRefreshResult = {
      container_registry_id: doc._id,
      status: 'refreshed',
      observed: outcome.observed,
      inventory: inv && { observed_at: inv.observed_at, truncated: inv.truncated, repository_count: inv.repository_count, tag_count: inv.tag_count },
    };
    res.json(body);
  });

  r.get('/images', can('read'), indexReady(deps), (req, res) => {
    const query = req.query as Record<string, unknown>;
    const unknown = Object.keys(query).filter((k) => k !== 'name');
    if (unknown.length > 0) throw new InputError(`Unknown query parameters: ${unknown.join(', ')}.`, unknown.map((p) => ({ path: p, message: 'unknown query parameter; use name' })));
    const name = single(query, 'name');
    if (name === undefined || name === '') throw new InputError('The name query parameter is required, e.g. /images?name=team/app:1.4.', [{ path: 'name', message: 'is required' }]);
    const body: ImagesResult = findImage(name, parseImage(name, 'name'), deps.resolver, deps.inventories);
    res.json(body);
  });

  return r;
}

/** The inventory of a registry, refreshing it, and where an image is. (OpenAPI; assembled by src/openapi.ts) */
export const inventoryApi: ApiPaths = {
  '/container_registry/{id}/inventory': {
    parameters: [idParam],
    get: op('read', 'What the registry’s last storage refresh saw: repositories, tags, manifest digests, media types, platforms', {
      operationId: 'getRegistryInventory',
      parameters: [
        { name: 'repository', in: 'query', description: 'Only this repository (as the registry lists it, e.g. `team/app`).', schema: { type: 'string' } },
        { name: 'tag', in: 'query', description: 'Only this tag (alone: scanned in order, a few thousand rows per page, so a page may hold fewer rows than `limit` and still have a next one).', schema: { type: 'string' } },
        { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
        { name: 'cursor', in: 'query', description: 'Opaque; from the previous page’s Link header.', schema: { type: 'string' } },
      ],
      responses: {
        '200': json(ref('InventoryPage'), 'One page, in (repository, tag) order; `observed_at: null` when the registry has no inventory (never refreshed, catalog refused, or mirrored from a peer).', {
          Link: { description: '`<...>; rel="next"` when there is a next page.', schema: { type: 'string' } },
        }),
        '400': problem('Invalid `repository`, `tag`, `limit` or `cursor`, or an unknown parameter (each named).'),
        '404': problem('No such entry.'),
      },
    }),
  },
  '/container_registry/{id}/refresh_storage': {
    parameters: [idParam],
    post: op('probe', 'Run the registry’s storage refresh now (crawl, observed storage, inventory) and answer its result', {
      operationId: 'refreshRegistryStorage',
      parameters: [{ name: 'wait', in: 'query', description: 'Seconds to wait for the result (0 to 300, default 30); past it the refresh goes on and the answer is 202.', schema: { type: 'integer', minimum: 0, maximum: WAIT_MAX_S, default: WAIT_DEFAULT_S } }],
      responses: {
        '200': json(ref('StorageRefreshResult'), 'The refresh ran: what it observed and the inventory it recorded.'),
        '202': json(ref('StorageRefreshResult'), 'A refresh of this entry is running (another one, here or on another replica, or this one after `wait`): its result will show in the entry and its inventory.', {
          Location: { description: 'The entry’s inventory.', schema: { type: 'string' } },
        }),
        '400': problem('Invalid `wait`, or an unknown parameter.'),
        '404': problem('No such entry.'),
        '409': problem('The entry is mirrored from a peer, which refreshes it.'),
      },
    }),
  },
  '/images': {
    get: op('read', 'Where is my image? The registries whose inventories hold it, with tags and digests', {
      operationId: 'findImage',
      parameters: [{ name: 'name', in: 'query', required: true, description: 'An image reference (`team/app`, `team/app:1.4`, `host:5000/team/app@sha256:...`); without a registry host, every registry holding that repository path is looked at too.', schema: { type: 'string' } }],
      responses: {
        '200': json(ref('ImagesResult'), 'The registries holding it (or serving it with nothing known against it), those holding it first.'),
        '400': problem('Missing or invalid `name` (distribution’s reference grammar), or an unknown parameter.'),
      },
    }),
  },
};
