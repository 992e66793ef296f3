/**
 * POST /pull-credentials {"image": REF} (SPEC section 18; roles puller and admin): the stored credentials of
 * the registries /resolve names for the image, for a node about to pull it (the kubelet credential
 * provider asks this). Served from the prefix index and the view: no database query. Every answer is one
 * audit line (key id, image, the registries whose credentials went out; never a secret) and is counted in
 * /metrics; the rate limit per key is mounted in app.ts.
 */
import { Router } from 'express';
import type { PullCredentialsResult } from '../../generated';
import type { Logger } from '../../logger';
import { recordPullCredentials } from '../../observability/metrics';
import type { CredentialCipher, StoredCredentials } from '../../registries/credentials';
import type { StoredRegistry } from '../../registries/model';
import { discloseCredentials, type CredentialCandidate } from '../../registries/pull-credentials';
import { parsePrefix, type Candidate } from '../../resolve';
import { validatePullCredentialsRequest } from '../../schemas';
import { principalOf, type Access } from '../auth';
import { jsonBody } from '../body';
import { json, op, problem, ref, type ApiPaths } from '../api-doc';
import { indexReady, nothingServes, parseImage, type IndexReadiness, type Resolver } from './resolve';

export interface PullCredentialsDeps extends IndexReadiness {
  resolver: Resolver;
  /** An entry's stored document (the view's), by id. */
  stored: (id: string) => Readonly<StoredRegistry> | undefined;
  cipher: CredentialCipher;
  logger: Logger;
  can: Access['can'];
  bodyLimit: number;
}

/** A candidate with its entry's own image prefix, or null when the entry is gone or has no valid prefix. */
function withOwnPrefix(c: Candidate, stored: PullCredentialsDeps['stored']): CredentialCandidate | null {
  const prefix = stored(c.container_registry_id)?.container_registry_image_prefix;
  if (typeof prefix !== 'string') return null;
  try {
    return { container_registry_id: c.container_registry_id, own_prefix: parsePrefix(prefix).name, origin: c.origin };
  } catch {
    return null;
  }
}

export function pullCredentialsRoutes(deps: PullCredentialsDeps): Router {
  const r = Router();
  r.post('/pull-credentials', deps.can('pull_credentials'), indexReady(deps), jsonBody(deps.bodyLimit), (req, res) => {
    const { image } = validatePullCredentialsRequest(req.body);
    const ref = parseImage(image, '/image');
    const who = principalOf(res)!;
    const result = deps.resolver.resolve(ref);
    if (result.candidates.length === 0) {
      recordPullCredentials('not_found');
      deps.logger.info('pull credentials asked for an image no registry serves', { key_id: who.id, role: who.role, image: result.image });
      throw nothingServes(result.image);
    }
    const candidates = result.candidates.map((c) => withOwnPrefix(c, deps.stored)).filter((c): c is CredentialCandidate => c !== null);
    const sealed = (id: string) => deps.stored(id)?.container_registry_credentials as StoredCredentials | undefined;
    const { auth, registryIds, unreadable } = discloseCredentials(candidates, sealed, deps.cipher);
    if (unreadable.length > 0) deps.logger.warn('stored credentials could not be unsealed (another CREDENTIALS_KEY?); left out of a pull-credentials answer', { registry_ids: unreadable });
    recordPullCredentials(registryIds.length > 0 ? 'disclosed' : 'none', registryIds.length);
    deps.logger.info('pull credentials disclosed', { key_id: who.id, role: who.role, image: result.image, registry_ids: registryIds });
    res.setHeader('Cache-Control', 'no-store');
    res.json({ image: result.image, auth } satisfies PullCredentialsResult);
  });
  return r;
}

/** Pull credentials for nodes (OpenAPI; assembled by src/openapi.ts) */
export const pullCredentialsApi: ApiPaths = {
  '/pull-credentials': {
    post: op('pull_credentials', 'The stored credentials of the registries that serve an image, for a node about to pull it (the kubelet credential provider)', {
      operationId: 'pullCredentials',
      description:
        'The candidates of /resolve for the image that have stored credentials, keyed by their image prefix; never an entry mirrored from a peer. Every answer is logged (key id, image, registry ids; never a secret), counted in /metrics (`registry_db_pull_credentials_*`) and limited per key (PULL_CREDENTIALS_RATE_LIMIT_MAX).',
      requestBody: { required: true, content: { 'application/json': { schema: ref('PullCredentialsRequest') } } },
      responses: {
        '200': json(ref('PullCredentialsResult'), 'The credentials (`auth` is empty when no candidate has any).'),
        '400': problem('Invalid body, or `image` is not a valid reference (the problem names /image).'),
        '404': problem('No registry of the catalog serves the image.'),
        '413': problem('Body too large.'),
        '415': problem('Body is not JSON, or labelled with a charset other than UTF-8.'),
      },
    }),
  },
};
