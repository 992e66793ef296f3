/**
 * The kubelet exec credential provider (KEP-2133, `credentialprovider.kubelet.k8s.io/v1`): the kubelet
 * writes a CredentialProviderRequest (`{"apiVersion", "kind", "image"}`) on stdin; the provider answers a
 * CredentialProviderResponse on stdout with the credentials the catalog holds for that image
 * (POST /pull-credentials with a puller key): `auth` keyed by image prefix, `cacheKeyType: Registry` (the
 * kubelet caches the answer per registry host), `cacheDuration`. An image no registry of the catalog serves
 * gets an answer without `auth` (the kubelet then pulls without credentials, and caches that too). Every
 * failure is an Error whose message the program writes to stderr before exiting non-zero.
 */
import { authHeaders, type ServerAccess } from './args';

export const API_VERSION = 'credentialprovider.kubelet.k8s.io/v1';
/** The most bytes of request read from stdin (a request is an image name and a few fields). */
export const REQUEST_MAX_BYTES = 1024 * 1024;

export interface CredentialProviderResponse {
  kind: 'CredentialProviderResponse';
  apiVersion: typeof API_VERSION;
  cacheKeyType: 'Registry';
  cacheDuration: string;
  auth?: Record<string, { username: string; password: string }>;
}

/** The image of a CredentialProviderRequest (the text the kubelet wrote), or an Error saying what is wrong. */
export function parseRequest(text: string): string {
  let req: unknown;
  try {
    req = JSON.parse(text);
  } catch {
    throw new Error('the request on stdin is not JSON (expected a CredentialProviderRequest from the kubelet)');
  }
  if (req === null || typeof req !== 'object' || Array.isArray(req)) throw new Error('the request on stdin is not a JSON object');
  const r = req as Record<string, unknown>;
  if (r.apiVersion !== API_VERSION) throw new Error(`the request's apiVersion is ${JSON.stringify(r.apiVersion)}; this provider speaks ${API_VERSION} (set apiVersion: ${API_VERSION} in the kubelet's CredentialProviderConfig)`);
  if (r.kind !== 'CredentialProviderRequest') throw new Error(`the request's kind is ${JSON.stringify(r.kind)}, not CredentialProviderRequest`);
  if (typeof r.image !== 'string' || r.image === '') throw new Error('the request has no image');
  return r.image;
}

/** A Go duration (what metav1.Duration decodes) for a number of seconds: `300s`. */
export const goDuration = (seconds: number) => `${seconds}s`;

/** Asks the catalog for the image's credentials and builds the response. */
export async function provide(access: ServerAccess, image: string, opts: { cacheSeconds: number; timeoutMs: number }): Promise<CredentialProviderResponse> {
  const res = await fetch(`${access.server}/pull-credentials`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...authHeaders(access) },
    body: JSON.stringify({ image }),
    signal: AbortSignal.timeout(opts.timeoutMs),
  }).catch((e: Error) => {
    throw new Error(`cannot reach ${access.server}: ${(e.cause as Error | undefined)?.message ?? e.message}`);
  });
  const text = await res.text();
  const response: CredentialProviderResponse = { kind: 'CredentialProviderResponse', apiVersion: API_VERSION, cacheKeyType: 'Registry', cacheDuration: goDuration(opts.cacheSeconds) };
  if (res.status === 404) return response;
  let body: { detail?: string; auth?: Record<string, { username?: unknown; password?: unknown }> } = {};
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    // reported below
  }
  if (res.status !== 200) throw new Error(`POST ${access.server}/pull-credentials answered ${res.status}: ${body.detail ?? text.slice(0, 300)}`);
  const auth: NonNullable<CredentialProviderResponse['auth']> = {};
  for (const [prefix, c] of Object.entries(body.auth ?? {})) {
    if (typeof c?.username === 'string' && typeof c.password === 'string') auth[prefix] = { username: c.username, password: c.password };
  }
  if (Object.keys(auth).length > 0) response.auth = auth;
  return response;
}
