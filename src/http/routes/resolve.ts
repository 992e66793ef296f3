/**
 * Resolution routes (SPEC section 14): GET /resolve?image=REF[&prefer=TAG,...] answers one image (404 when
 * no registry serves it); POST /resolve {"images": [...], "prefer"?: [...]} answers up to 1,000 at once, one
 * item per image in order, each a result or the problem GET would have answered for that image. Both read
 * the in-memory prefix index (src/resolve), never the database.
 */
import { Router, type RequestHandler } from 'express';
import { InputError, NotFoundError, ServiceUnavailableError } from '../../errors';
import type { ResolveBatchResult, ResolveResult } from '../../generated';
import { InvalidReferenceError, parseReference, type ImageReference, type ResolveOptions } from '../../resolve';
import { validateResolveRequest } from '../../schemas';
import type { Access } from '../auth';
import { jsonBody } from '../body';
import { problemOf } from '../problem';

/** What the routes need of the index. */
export interface Resolver {
  resolve(ref: ImageReference, opts?: ResolveOptions): ResolveResult;
}

/** The reference, or an InputError naming `path` (the query parameter, or the JSON Pointer of the item). */
export function parseImage(input: string, path: string): ImageReference {
  try {
    return parseReference(input);
  } catch (e) {
    if (!(e instanceof InvalidReferenceError)) throw e;
    throw new InputError(`"${input.length > 100 ? `${input.slice(0, 100)}…` : input}" is not a valid image reference: ${e.message}.`, [{ path, message: `is not a valid image reference (${e.code}): ${e.message}` }]);
  }
}

export function nothingServes(image: string): NotFoundError {
  return new NotFoundError(`No registry of the catalog serves ${image}: no entry's image prefix or mirror_of is a prefix of it.`);
}

/** GET's query string, checked by the same schema as POST's body: `image` once, `prefer` comma-separated (repeatable). */
function parseQuery(query: Record<string, unknown>): { image: string; prefer?: string[] } {
  const image = query.image;
  if (image === undefined || image === '') throw new InputError('The image query parameter is required, e.g. /resolve?image=nginx:1.27.', [{ path: 'image', message: 'is required' }]);
  if (typeof image !== 'string') throw new InputError('Give one image per GET /resolve; POST /resolve resolves several.', [{ path: 'image', message: 'must be given once' }]);
  const raw = query.prefer === undefined ? undefined : ([] as unknown[]).concat(query.prefer);
  const prefer = raw?.flatMap((v) => String(v).split(',')).map((t) => t.trim()).filter((t) => t !== '');
  try {
    validateResolveRequest({ images: [image], ...(prefer ? { prefer } : {}) });
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    const errors = (e.errors ?? []).map((fe) => ({ ...fe, path: fe.path.startsWith('/images') ? 'image' : 'prefer' }));
    throw new InputError(`The query is invalid: ${errors.map((fe) => `${fe.path} ${fe.message}`).join('; ')}`, errors);
  }
  return { image, ...(prefer ? { prefer } : {}) };
}

/** How a route that reads the prefix index waits for it (see resolveRoutes). */
export interface IndexReadiness {
  isReady?: () => boolean;
  caughtUp?: () => Promise<unknown>;
}

/**
 * Middleware of the routes that read the prefix index: 503 with Retry-After while it is still being filled
 * (rather than a 404 that only means "not loaded yet"), then a wait until it holds every write this replica
 * acknowledged (read-your-writes).
 */
export function indexReady(deps: IndexReadiness): RequestHandler {
  return async (_req, _res, next) => {
    if (deps.isReady && !deps.isReady()) throw new ServiceUnavailableError('The resolver is still loading the catalog; try again shortly.', 2);
    await deps.caughtUp?.();
    next();
  };
}

/**
 * `isReady`: false while the index is still being filled (the routes answer 503 with Retry-After rather
 * than a 404 that only means "not loaded yet"); absent: always ready.
 */
export function resolveRoutes(deps: {
  resolver: Resolver;
  can: Access['can'];
  bodyLimit: number;
  isReady?: () => boolean;
  /** Resolves once the index includes every write this replica acknowledged (read-your-writes). */
  caughtUp?: () => Promise<unknown>;
}): Router {
  const r = Router();
  const { can, resolver } = deps;
  const ready = indexReady(deps);

  r.get('/resolve', can('read'), ready, (req, res) => {
    const { image, prefer } = parseQuery(req.query as Record<string, unknown>);
    const result = resolver.resolve(parseImage(image, 'image'), { prefer });
    if (result.candidates.length === 0) throw nothingServes(result.image);
    res.json(result);
  });

  r.post('/resolve', can('read'), ready, jsonBody(deps.bodyLimit), (req, res) => {
    const { images, prefer } = validateResolveRequest(req.body);
    const results: ResolveBatchResult['results'] = images.map((input, i) => {
      let ref: ImageReference;
      try {
        ref = parseImage(input, `/images/${i}`);
      } catch (e) {
        if (!(e instanceof InputError)) throw e;
        return { input, error: problemOf(e) };
      }
      const result = resolver.resolve(ref, { prefer });
      if (result.candidates.length === 0) return { input, image: result.image, error: problemOf(nothingServes(result.image)) };
      return { input, ...result };
    });
    res.json({ results } satisfies ResolveBatchResult);
  });

  return r;
}
