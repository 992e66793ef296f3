/**
 * Authenticated GETs (and HEADs) against one registry for the storage crawl and presence checks: Basic when the registry challenges with
 * Basic, otherwise Bearer tokens fetched per scope (`registry:catalog:*`, `repository:<name>:pull`) and
 * cached per scope until shortly before they expire. Anonymous token requests are tried when no
 * credentials are stored (public registries hand out pull tokens).
 */
import { parseChallenges, pickChallenge } from './challenge';
import { getFollowing, USER_AGENT, type HttpClient, type HttpResponse, type TlsSettings } from './client';
import { ProbeError } from './errors';
import { apiBase } from './registry-url';
import { inCredentialScope } from './scope';
import { basicAuthorization, fetchToken, type Token } from './token';
import type { ProbeTarget } from './types';

export interface RegistrySession {
  /** `{public_url}/v2/` */
  readonly base: URL;
  /** GET `path` (relative to the base) or an absolute URL, authorized for `scope`. */
  get(path: string | URL, scope: string, accept: string, maxBodyBytes: number): Promise<HttpResponse>;
  /** HEAD `path`, authorized for `scope` the same way. */
  head(path: string, scope: string, accept: string): Promise<HttpResponse>;
}

const TOKEN_SLACK_MS = 5000;

export function createSession(client: HttpClient, target: ProbeTarget, signal: AbortSignal): RegistrySession {
  const base = apiBase(target.url);
  const tls: TlsSettings = { insecureSkipTlsVerify: target.insecureSkipTlsVerify, caCertificate: target.caCertificate };
  const tokens = new Map<string, Promise<Token | null>>();
  let basic: string | null = null;

  const sender = (method: 'GET' | 'HEAD') => (url: URL, accept: string, maxBodyBytes: number, authorization: string | null): Promise<HttpResponse> => {
    const headers: Record<string, string> = { Accept: accept, 'User-Agent': USER_AGENT };
    if (authorization) headers.Authorization = authorization;
    return getFollowing(client, { url, method, headers, tls, signal, maxBodyBytes });
  };

  /** A token for `scope` (or the scopes the challenge names) from the realm; null when the token service refuses. */
  const tokenFor = (scope: string, realm: string, service: string | undefined, asked: string | undefined): Promise<Token | null> => {
    const cached = tokens.get(scope);
    if (cached) return cached;
    const scopes = asked ? asked.split(' ').filter(Boolean) : [scope];
    const pending = fetchToken(client, { registry: base, realm, service, scopes, credentials: target.credentials, tls, signal }).catch((err: unknown) => {
      if (err instanceof ProbeError && err.code === 'auth_failed') return null;
      throw err;
    });
    tokens.set(scope, pending);
    return pending;
  };

  const cachedAuthorization = async (scope: string): Promise<string | null> => {
    if (basic) return basic;
    const pending = tokens.get(scope);
    if (!pending) return null;
    const token = await pending;
    if (token && token.expiresAt - TOKEN_SLACK_MS > Date.now()) return `Bearer ${token.token}`;
    tokens.delete(scope);
    return null;
  };

  /** One request, with the registry's authentication flow: a cached authorization, else the challenge's. */
  const authorized = async (method: 'GET' | 'HEAD', path: string | URL, scope: string, accept: string, maxBodyBytes: number): Promise<HttpResponse> => {
    const send = sender(method);
    const url = typeof path === 'string' ? new URL(path, base) : path;
    // Credentials and tokens go to the registry's own origin only (scope.ts), wherever a Link points.
    if (!inCredentialScope(base, url)) return send(url, accept, maxBodyBytes, null);
    const first = await send(url, accept, maxBodyBytes, await cachedAuthorization(scope));
    if (first.status !== 401 || !inCredentialScope(base, first.url)) return first;
    const challenge = pickChallenge(parseChallenges(first.headers['www-authenticate']));
    if (!challenge) return first;
    if (challenge.scheme === 'basic') {
      if (!target.credentials || basic) return first;
      basic = basicAuthorization(target.credentials);
      return send(url, accept, maxBodyBytes, basic);
    }
    const realm = challenge.params.realm;
    if (!realm) return first;
    tokens.delete(scope);
    const token = await tokenFor(scope, realm, challenge.params.service, challenge.params.scope);
    if (!token) return first;
    return send(url, accept, maxBodyBytes, `Bearer ${token.token}`);
  };

  return {
    base,
    get: (path, scope, accept, maxBodyBytes) => authorized('GET', path, scope, accept, maxBodyBytes),
    head: (path, scope, accept) => authorized('HEAD', path, scope, accept, 0),
  };
}
