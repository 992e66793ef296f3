/**
 * Does this registry hold this manifest now? (`/resolve?verify=true`, SPEC 19.) One `HEAD
 * /v2/<repository>/manifests/<reference>` through the crawl's session (stored credentials, the token flow,
 * the egress policy, the entry's TLS settings), and a GET of the manifest only when the HEAD cannot answer:
 * no digest in its headers, a digest reference whose digest the registry does not state, or an index (its
 * platforms are in the body). A digest reference is present only where that exact digest answers. Never
 * throws: a failure is `present: null` with an error code.
 */
import { webcrypto } from 'node:crypto';
import { header, type HttpClient, type HttpResponse } from './client';
import { classifyError } from './errors';
import { isDigest, isIndexMediaType, MANIFEST_ACCEPT, mediaTypeOf, parseManifest, platformsOf } from './manifests';
import { createSession } from './session';
import type { ProbeTarget } from './types';

export interface LiveManifest {
  /** true: the registry answered it; false: it answered 404 (or another digest); null: no answer to go by. */
  present: boolean | null;
  digest: string | null;
  media_type: string | null;
  platforms: string[] | null;
  /** Why `present` is null (a probe error code, as health uses). */
  error: string | null;
}

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

const HASHES = new Map([
  ['sha256', 'SHA-256'],
  ['sha512', 'SHA-512'],
]);

/** The digest of `body` in the algorithm of `like` (a digest reference), sha256 for a tag. */
async function digestOf(body: Buffer, like: string | null): Promise<string> {
  const algorithm = like !== null && HASHES.has(like.slice(0, like.indexOf(':'))) ? like.slice(0, like.indexOf(':')) : 'sha256';
  return `${algorithm}:${Buffer.from(await webcrypto.subtle.digest(HASHES.get(algorithm)!, body)).toString('hex')}`;
}

const failed = (error: string): LiveManifest => ({ present: null, digest: null, media_type: null, platforms: null, error });

/** Reads what an answer says; null when it is not a 200 the caller can use. */
function statusError(res: HttpResponse): string | null {
  if (res.status === 200) return null;
  if (res.status === 401 || res.status === 403) return 'auth_failed';
  if (res.status === 429) return 'rate_limited';
  return 'http_error';
}

/**
 * Manifest `reference` (a tag or a digest) of `repository` on `target`, within `signal`. `deadline.timedOut()`
 * tells a timeout from another failure.
 */
export async function checkManifest(client: HttpClient, target: ProbeTarget, repository: string, reference: string, signal: AbortSignal, deadline: { timedOut(): boolean }): Promise<LiveManifest> {
  const path = `${repository}/manifests/${reference}`;
  const scope = `repository:${repository}:pull`;
  try {
    const session = createSession(client, target, signal);
    const head = await session.head(path, scope, MANIFEST_ACCEPT);
    if (head.status === 404) return { present: false, digest: null, media_type: null, platforms: null, error: null };
    const refused = statusError(head);
    if (refused) return failed(refused);
    let digest = header(head.headers, 'docker-content-digest') ?? null;
    if (digest !== null && !isDigest(digest)) digest = null;
    let media_type = mediaTypeOf(header(head.headers, 'content-type'), null);
    let platforms: string[] | null = null;
    const byDigest = isDigest(reference);
    if (digest === null || (byDigest && digest !== reference) || isIndexMediaType(media_type)) {
      const res = await session.get(path, scope, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES);
      if (res.status === 404) return { present: false, digest: null, media_type: null, platforms: null, error: null };
      const error = statusError(res) ?? (res.bodyTruncated ? 'probe_error' : null);
      if (error) return failed(error);
      const manifest = parseManifest(res.body);
      media_type = mediaTypeOf(header(res.headers, 'content-type'), manifest?.mediaType ?? null);
      platforms = manifest?.isIndex ? platformsOf(manifest.children) : null;
      // What the bytes hash to is the digest, whatever a header claims (a digest reference must match it exactly).
      if (digest === null || byDigest) digest = await digestOf(res.body, byDigest ? reference : null);
    }
    if (byDigest && digest !== reference) return { present: false, digest, media_type, platforms, error: null };
    return { present: true, digest, media_type, platforms, error: null };
  } catch (err) {
    return failed(classifyError(err, deadline).code);
  }
}
