/**
 * Catalog routes (SPEC section 5). Handlers parse, call the domain, respond.
 */
import { Router, type Request, type Response } from 'express';
import { InputError, PreconditionFailedError } from '../../errors';
import { etagOf, toApi, type StoredRegistry } from '../../registries/model';
import type { RegistryService } from '../../registries/service';
import type { Access } from '../auth';
import { jsonBody } from '../body';

/** If-Match → the version it names; `*` or absent → undefined. A weak tag never matches (RFC 9110 §13.1.1). */
export function parseIfMatch(header: string | undefined): number | undefined {
  if (header === undefined || header.trim() === '*') return undefined;
  const m = /^\s*(W\/)?"?(\d{1,15})"?\s*$/.exec(header);
  if (!m) throw new InputError('If-Match must be one entity tag as sent in ETag, e.g. "3".', [{ path: 'If-Match', message: 'must be one entity tag such as "3"' }]);
  if (m[1]) throw new PreconditionFailedError('If-Match needs a strong entity tag; weak tags never match.');
  return Number(m[2]);
}

function sendEntry(res: Response, doc: StoredRegistry, status = 200): void {
  res.status(status).setHeader('ETag', etagOf(doc.version));
  res.json(toApi(doc));
}

export function registryRoutes(service: RegistryService, opts: { bodyLimit: number; can: Access['can'] }): Router {
  const r = Router();
  const { can } = opts;
  const json = jsonBody(opts.bodyLimit);

  r.post('/container_registry', can('write'), json, async (req, res) => {
    const doc = await service.create(req.body);
    res.setHeader('Location', `/container_registry/${doc._id}`);
    sendEntry(res, doc, 201);
  });

  r.get('/container_registry/:id', can('read'), async (req, res) => {
    sendEntry(res, await service.get(req.params.id as string));
  });

  r.put('/container_registry/:id', can('write'), json, async (req, res) => {
    const ifMatch = parseIfMatch(req.get('If-Match'));
    sendEntry(res, await service.update(req.params.id as string, req.body, ifMatch));
  });

  r.delete('/container_registry/:id', can('delete'), async (req, res) => {
    await service.remove(req.params.id as string, parseIfMatch(req.get('If-Match')));
    res.status(204).end();
  });

  r.post('/container_registries', can('read'), jsonBody(opts.bodyLimit, { optional: true }), async (req: Request, res) => {
    const query = req.query as Record<string, unknown>;
    const page = await service.query(req.body, query);
    if (page.nextCursor) {
      const next = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (k !== 'cursor' && typeof v === 'string') next.set(k, v);
      next.set('cursor', page.nextCursor);
      res.setHeader('Link', `</container_registries?${next.toString()}>; rel="next"`);
    }
    if (page.revision !== undefined) res.setHeader('X-Catalog-Revision', String(page.revision));
    res.json(page.items.map(toApi));
  });

  return r;
}
