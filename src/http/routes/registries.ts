/**
 * Catalog routes (SPEC section 5). Handlers parse, call the domain, respond.
 */
import { Router, type Request, type Response } from 'express';
import { InputError, PreconditionFailedError } from '../../errors';
import { etagOf, toApi, type StoredRegistry } from '../../registries/model';
import type { RegistryService } from '../../registries/service';
import type { Access } from '../auth';
import { jsonBody } from '../body';
import { type ApiPaths, entryView, etag, idParam, ifMatch, json, op, problem, ref } from '../api-doc';
import { DEFAULT_LIMIT, MAX_LIMIT } from '../../registries/query';

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
    const read = await service.read(req.params.id as string, req.query as Record<string, unknown>);
    if (read.revision !== undefined) res.setHeader('X-Catalog-Revision', String(read.revision));
    if (read.doc === null) throw read.missing;
    sendEntry(res, read.doc);
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

const minRevisionParam = { name: 'min_revision', in: 'query', description: 'Wait (up to 5 s) until the answer includes every change up to this catalog revision; 503 if it does not; 400 if no such revision was ever written.', schema: { type: 'integer', minimum: 0 } } as const;
const revisionHeader = { 'X-Catalog-Revision': { description: 'The answer includes every change up to this catalog revision (absent when it came from the database).', schema: { type: 'string' } } };

/** Create, read, update, delete and query entries. (OpenAPI; assembled by src/openapi.ts) */
export const registriesApi: ApiPaths = {
  '/container_registry': {
    post: op('write', 'Create a registry entry', {
      operationId: 'createRegistry',
      requestBody: { required: true, content: { 'application/json': { schema: ref('ContainerRegistry') } } },
      responses: {
        '201': json(entryView, 'The stored entry.', { ...etag, Location: { description: 'URL of the new entry.', schema: { type: 'string' } } }),
        '400': problem('Invalid entry or malformed JSON.'),
        '409': problem('The name is taken.'),
        '413': problem('Body too large, or the entry would be over 16,711,680 bytes as stored (the problem names its largest field).'),
        '415': problem('Body is not JSON, or labelled with a charset other than UTF-8.'),
      },
    }),
  },
  '/container_registry/{id}': {
    parameters: [idParam],
    get: op('read', 'Read one entry', {
      operationId: 'getRegistry',
      parameters: [minRevisionParam],
      responses: {
        '200': json(entryView, 'The entry.', { ...etag, ...revisionHeader }),
        '400': problem('min_revision is not a revision, or one never written.'),
        '404': problem('No such entry.'),
        '503': problem('min_revision was not reached within 5 s.'),
      },
    }),
    put: op('write', 'Update an entry ($set, $unset, $addToSet, $pull, or a plain object of fields)', {
      operationId: 'updateRegistry',
      parameters: [ifMatch],
      requestBody: { required: true, content: { 'application/json': { schema: ref('ContainerRegistryUpdate') } } },
      responses: {
        '200': json(entryView, 'The updated entry.', etag),
        '400': problem('Invalid update.'),
        '404': problem('No such entry.'),
        '409': problem('The name is taken, or the entry is mirrored from a peer (read-only here; the problem names the peer).'),
        '412': problem('If-Match names an older version.'),
        '413': problem('Body too large, or the updated entry would be over 16,711,680 bytes as stored (the problem names its largest field).'),
        '415': problem('Body is not JSON, or labelled with a charset other than UTF-8.'),
      },
    }),
    delete: op('delete', 'Delete an entry', {
      operationId: 'deleteRegistry',
      parameters: [ifMatch],
      responses: { '204': { description: 'Deleted.' }, '400': problem('If-Match is not one entity tag.'), '404': problem('No such entry.'), '409': problem('The entry is mirrored from a peer (read-only here; the problem names the peer).'), '412': problem('If-Match names an older version.') },
    }),
  },
  '/container_registries': {
    post: op('read', 'Query the catalog with a Mongo-style filter', {
      operationId: 'queryRegistries',
      parameters: [
        { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: MAX_LIMIT, default: DEFAULT_LIMIT } },
        { name: 'cursor', in: 'query', description: 'Opaque; from the previous page’s Link header.', schema: { type: 'string' } },
        { name: 'sort', in: 'query', description: 'A whitelisted field, `-` for descending.', schema: { type: 'string' } },
        { name: 'fields', in: 'query', description: 'Comma-separated projection.', schema: { type: 'string' } },
        minRevisionParam,
      ],
      requestBody: { required: false, content: { 'application/json': { schema: ref('ContainerRegistryFilter') } } },
      responses: {
        '200': json({ type: 'array', items: entryView }, 'The matching entries.', {
          Link: { description: '`<...>; rel="next"` when there is a next page.', schema: { type: 'string' } },
          ...revisionHeader,
        }),
        '400': problem('Invalid filter or query option.'),
        '413': problem('Body too large.'),
        '415': problem('Body is not JSON, or labelled with a charset other than UTF-8.'),
      },
    }),
  },
};
