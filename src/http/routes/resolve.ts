/**
 * Resolution routes (SPEC sections 14 and 19): GET /resolve?image=REF[&prefer=TAG,...][&require=present]
 * [&platform=os/arch[/variant]][&verify=true] answers one image (404 when no registry serves it, or none is
 * known to hold it with require=present); POST /resolve {"images": [...], "prefer"?, "require"?, "platform"?,
 * "verify"?} answers up to 1,000 at once (20 with verify), one item per image in order, each a result or the
 * problem GET would have answered for that image. Both read the in-memory prefix index and inventories
 * (src/resolve, src/inventory), never the database. `verify=true` asks every candidate live instead
 * (src/health/verify.ts): one deadline (PROBE_TIMEOUT_MS) and one pool of checks for the whole request,
 * counted against the probe rate limit.
 *
 * Bounded: at most MAX_CANDIDATES candidates per image (`truncated` says there were more); a batch is
 * resolved SLICE_MS at a time, letting other requests through in between (the index may move on between two
 * slices, as it would between two requests), and its answer is serialised as it goes: one that would exceed
 * `maxAnswerBytes` (RESOLVE_MAX_ANSWER_BYTES) stops there and is refused with a 413 naming the limit and how
 * many images fit. The answer is written in parts of PART_CHARS, the next once the last one left the process.
 */
import { Router, type Request, type RequestHandler, type Response } from 'express';
import { InputError, NotFoundError, PayloadTooLargeError, ServiceUnavailableError } from '../../errors';
import type { ResolveBatchResult, ResolveResult } from '../../generated';
import type { LiveVerifier } from '../../health/verify';
import { InvalidReferenceError, parseReference, type ImageReference, type InventoryView, type Presence, type ResolveOptions } from '../../resolve';
import { validateResolveRequest } from '../../schemas';
import type { Access } from '../auth';
import { drainedOrClosed } from '../../lib/writable';
import { single } from '../../lib/query-params';
import { jsonBody } from '../body';
import { problemOf } from '../problem';
import { type ApiPaths, json, op, problem, ref } from '../api-doc';

/** What the routes need of the index. */
export interface Resolver {
  resolve(ref: ImageReference, opts?: ResolveOptions): ResolveResult;
  rerank(ref: ImageReference, result: ResolveResult, live: ReadonlyMap<string, Presence>, opts?: ResolveOptions): ResolveResult;
}

/** Most images of a POST /resolve with `verify` (each asks up to 20 registries live). */
export const MAX_VERIFIED_IMAGES = 20;

/** What a request asks of resolution besides the images. */
interface Asked {
  prefer?: string[];
  require?: 'present';
  platform?: string;
  verify?: boolean;
}

/** A batch lets other requests through after this many milliseconds of resolving. */
const SLICE_MS = 5;

/** An answer is written about this many characters at a time. */
const PART_CHARS = 256 * 1024;

/**
 * Writes `head`, the items comma-separated, then `tail`, a part at a time: other requests get through in
 * between, and the next part waits until the client read the last one (or went away).
 */
async function writeInParts(res: Response, head: string, items: string[], tail: string): Promise<void> {
  let part = head;
  for (let i = 0; i < items.length; i++) {
    part += (i > 0 ? ',' : '') + items[i];
    if (part.length < PART_CHARS) continue;
    if (res.destroyed) return;
    if (!res.write(part)) await drainedOrClosed(res);
    else await new Promise((resolve) => setImmediate(resolve));
    part = '';
  }
  if (!res.destroyed) res.end(part + tail);
}

function answerTooLarge(limit: number, fitting: number): PayloadTooLargeError {
  return new PayloadTooLargeError(
    `The answer to these images would be larger than ${limit} bytes (RESOLVE_MAX_ANSWER_BYTES); the first ${fitting} fit. Send fewer images per request.`,
    [{ path: '/images', message: `the answer exceeds ${limit} bytes from item ${fitting} on; send at most ${fitting} images per request` }],
  );
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

function noneHolds(image: string): NotFoundError {
  return new NotFoundError(`No registry of the catalog is known to hold ${image} (require=present keeps only candidates whose inventory, or live answer, holds it).`);
}

/** GET's query string, checked by the same schema as POST's body: `image` once, `prefer` comma-separated (repeatable), `require`, `platform`, `verify`. */
function parseQuery(query: Record<string, unknown>): Asked & { image: string } {
  const image = query.image;
  if (image === undefined || image === '') throw new InputError('The image query parameter is required, e.g. /resolve?image=nginx:1.27.', [{ path: 'image', message: 'is required' }]);
  if (typeof image !== 'string') throw new InputError('Give one image per GET /resolve; POST /resolve resolves several.', [{ path: 'image', message: 'must be given once' }]);
  const raw = query.prefer === undefined ? undefined : ([] as unknown[]).concat(query.prefer);
  const prefer = raw?.flatMap((v) => String(v).split(',')).map((t) => t.trim()).filter((t) => t !== '');
  const require = single(query, 'require');
  const platform = single(query, 'platform');
  const verifyRaw = single(query, 'verify');
  if (verifyRaw !== undefined && verifyRaw !== 'true' && verifyRaw !== 'false') throw new InputError('verify must be true or false.', [{ path: 'verify', message: 'must be true or false' }]);
  const asked = { ...(prefer ? { prefer } : {}), ...(require !== undefined ? { require } : {}), ...(platform !== undefined ? { platform } : {}), ...(verifyRaw !== undefined ? { verify: verifyRaw === 'true' } : {}) };
  try {
    validateResolveRequest({ images: [image], ...asked });
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    // Each problem named by its query parameter (`/images/0` is `image`, `/prefer/3` is `prefer`).
    const errors = (e.errors ?? []).map((fe) => ({ ...fe, path: fe.path.startsWith('/images') ? 'image' : fe.path.split('/')[1] || 'image' }));
    throw new InputError(`The query is invalid: ${errors.map((fe) => `${fe.path} ${fe.message}`).join('; ')}`, errors);
  }
  return { image, ...(asked as Asked) };
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
  /** Most bytes of a POST /resolve answer (RESOLVE_MAX_ANSWER_BYTES). */
  maxAnswerBytes: number;
  isReady?: () => boolean;
  /** Resolves once the index includes every write this replica acknowledged (read-your-writes). */
  caughtUp?: () => Promise<unknown>;
  /** The registries' inventories (presence); absent: every candidate's presence is unknown. */
  inventory?: InventoryView;
  /** Live checks for `verify=true`; absent: verify is refused. */
  verifier?: LiveVerifier;
  /** The probe rate limit, counted once per request that verifies. */
  verifyLimit?: RequestHandler;
}): Router {
  const r = Router();
  const { can, resolver } = deps;
  const ready = indexReady(deps);

  /** The rate limit of probes, for a request that sends traffic to registries. */
  const limitVerify = (req: Request, res: Response): Promise<void> =>
    new Promise((resolve, reject) => (deps.verifyLimit ? deps.verifyLimit(req, res, (e?: unknown) => (e ? reject(e) : resolve())) : resolve()));

  /** The options of `asked` for the index (presence from the inventories, unless verified live). */
  const optionsOf = (asked: Asked): ResolveOptions => ({ prefer: asked.prefer, platform: asked.platform, inventory: deps.inventory, ...(asked.verify ? {} : { require: asked.require }) });

  /** One image resolved, and with `verify` its candidates asked live within `round`. */
  async function answer(ref: ImageReference, asked: Asked, round?: ReturnType<LiveVerifier['round']>): Promise<ResolveResult> {
    const first = resolver.resolve(ref, optionsOf(asked));
    if (!round) return first;
    const live = await round.check(ref, first.candidates, asked.platform);
    return resolver.rerank(ref, first, live, { prefer: asked.prefer, require: asked.require });
  }

  /** A round of live checks for this request (verify), after the probe rate limit let it through. */
  async function roundFor(req: Request, res: Response, asked: Asked): Promise<ReturnType<LiveVerifier['round']> | undefined> {
    if (!asked.verify) return undefined;
    if (!deps.verifier) throw new InputError('verify=true is not available on this service.', [{ path: 'verify', message: 'is not available' }]);
    await limitVerify(req, res);
    return deps.verifier.round();
  }

  r.get('/resolve', can('read'), ready, async (req, res) => {
    const asked = parseQuery(req.query as Record<string, unknown>);
    const ref = parseImage(asked.image, 'image');
    const round = await roundFor(req, res, asked);
    try {
      const result = await answer(ref, asked, round);
      if (result.candidates.length === 0) throw asked.require === 'present' ? noneHolds(result.image) : nothingServes(result.image);
      res.json(result);
    } finally {
      round?.dispose();
    }
  });

  r.post('/resolve', can('read'), ready, jsonBody(deps.bodyLimit), async (req, res) => {
    const { images, ...asked } = validateResolveRequest(req.body);
    if (asked.verify && images.length > MAX_VERIFIED_IMAGES) {
      throw new InputError(`With verify, send at most ${MAX_VERIFIED_IMAGES} images per request (each asks up to 20 registries live).`, [{ path: '/images', message: `must hold at most ${MAX_VERIFIED_IMAGES} images with verify` }]);
    }
    const round = await roundFor(req, res, asked);
    const head = '{"results":[';
    const items: string[] = [];
    let bytes = head.length + 2;
    try {
      // Verified images are asked all at once (the round bounds them); the others a slice of time at a time.
      const verified = round ? await Promise.all(images.map((input, i) => resolveOne(input, i, asked, round))) : undefined;
      let sliceStart = performance.now();
      for (let i = 0; i < images.length; i++) {
        if (performance.now() - sliceStart >= SLICE_MS) {
          await new Promise((resolve) => setImmediate(resolve));
          sliceStart = performance.now();
        }
        const item = JSON.stringify(verified ? verified[i] : await resolveOne(images[i]!, i, asked));
        bytes += Buffer.byteLength(item) + (i > 0 ? 1 : 0);
        if (bytes > deps.maxAnswerBytes) throw answerTooLarge(deps.maxAnswerBytes, i);
        items.push(item);
      }
    } finally {
      round?.dispose();
    }
    res.status(200).type('json').setHeader('Content-Length', String(bytes));
    await writeInParts(res, head, items, ']}');
  });

  /** One item of a batch answer: the result, or the problem GET would have answered for this image. */
  async function resolveOne(input: string, i: number, asked: Asked, round?: ReturnType<LiveVerifier['round']>): Promise<ResolveBatchResult['results'][number]> {
    let ref: ImageReference;
    try {
      ref = parseImage(input, `/images/${i}`);
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      return { input, error: problemOf(e) };
    }
    const result = await answer(ref, asked, round);
    if (result.candidates.length === 0) return { input, image: result.image, error: problemOf(asked.require === 'present' ? noneHolds(result.image) : nothingServes(result.image)) };
    return { input, ...result };
  }

  return r;
}

/** Image resolution. (OpenAPI; assembled by src/openapi.ts) */
export const resolveApi: ApiPaths = {
  '/resolve': {
    get: op('read', 'Where to pull an image from: the registries that serve it, best first', {
      operationId: 'resolveImage',
      parameters: [
        { name: 'image', in: 'query', required: true, description: 'An image reference as given to `docker pull` (`nginx`, `quay.io/org/app:1.2`, `host:5000/app@sha256:...`); normalised as Docker does.', schema: { type: 'string' } },
        { name: 'prefer', in: 'query', required: false, description: 'Comma-separated entry tags: among otherwise equal candidates, an entry carrying an earlier one comes first.', schema: { type: 'string' } },
        { name: 'require', in: 'query', required: false, description: '`present`: only candidates known to hold the reference.', schema: { type: 'string', enum: ['present'] } },
        { name: 'platform', in: 'query', required: false, description: '`os/architecture[/variant]`: an index lacking it is not present for it.', schema: { type: 'string' } },
        { name: 'verify', in: 'query', required: false, description: '`true`: ask each candidate live (HEAD of the manifest with its stored credentials), all within PROBE_TIMEOUT_MS; counted against the probe rate limit.', schema: { type: 'boolean' } },
      ],
      responses: {
        '200': json(ref('ResolveResult'), 'The normalised image and its candidates, best first: at most 20 (`truncated: true` when more serve it), each saying whether it holds the reference (`present`, `digest`, `platforms`, `observed_at`, `source`) and, for a mirror and its origin holding different digests, `drift`.'),
        '400': problem('Missing or invalid `image` (distribution’s reference grammar), or invalid `prefer`, `require`, `platform` or `verify` (each named).'),
        '404': problem('No entry’s image prefix or `mirror_of` is a prefix of the image; or, with `require=present`, none is known to hold it.'),
      },
    }),
    post: op('read', 'Resolve up to 1,000 images at once', {
      operationId: 'resolveImages',
      requestBody: { required: true, content: { 'application/json': { schema: ref('ResolveRequest') } } },
      responses: {
        '200': json(ref('ResolveBatchResult'), 'One item per image, in order: a result (at most 20 candidates, `truncated: true` when more serve it), or the problem GET /resolve would answer for that image.'),
        '400': problem('Invalid body (not a list of 1 to 1,000 strings, or 20 with `verify`; invalid `prefer`, `require`, `platform` or `verify`), or malformed JSON.'),
        '413': problem('Body too large, or the answer would exceed RESOLVE_MAX_ANSWER_BYTES: the problem names the limit and, at `/images`, how many images fit; send fewer per request.'),
        '415': problem('Body is not JSON, or labelled with a charset other than UTF-8.'),
      },
    }),
  },
};
