/**
 * Docker token flow (distribution token spec): `GET <realm>?service=<service>&scope=<scope>...` with Basic
 * credentials when stored; the answer carries `token` and/or `access_token`, optional `expires_in` (60 s
 * by default) and `issued_at`. The realm may sit on another host or port; it goes through the same egress
 * policy and TLS settings as the registry.
 */
import { getFollowing, header, USER_AGENT, type HttpClient, type TlsSettings } from './client';
import { ProbeError } from './errors';
import { realmMayReceiveCredentials } from './scope';

export interface Credentials {
  username: string;
  password: string;
}

export interface TokenRequest {
  /** The registry's API base: credentials go to the realm only under the rules of scope.ts. */
  registry: URL;
  realm: string;
  service?: string;
  scopes: readonly string[];
  credentials?: Credentials;
  tls: TlsSettings;
  signal: AbortSignal;
}

export interface Token {
  token: string;
  /** Epoch milliseconds after which the token should not be used. */
  expiresAt: number;
}

const DEFAULT_EXPIRES_IN_S = 60;
const MAX_TOKEN_RESPONSE_BYTES = 256 * 1024;

export function basicAuthorization(credentials: Credentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`, 'utf8').toString('base64')}`;
}

/** Fetches a token; throws ProbeError auth_failed (refused), rate_limited (429) or token_error (anything else). */
export async function fetchToken(client: HttpClient, req: TokenRequest): Promise<Token> {
  let url: URL;
  try {
    url = new URL(req.realm);
  } catch {
    throw new ProbeError('token_error', `token realm is not a URL: ${req.realm}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ProbeError('token_error', `token realm has unsupported scheme ${url.protocol}`);
  if (req.service) url.searchParams.set('service', req.service);
  for (const scope of req.scopes) url.searchParams.append('scope', scope);
  // A realm the egress policy refuses is reported as such (nothing is sent either way).
  client.egress.checkUrl(url);
  if (req.credentials && !realmMayReceiveCredentials(req.registry, url)) {
    throw new ProbeError('auth_failed', `token realm ${url.origin} is plain http on another host than the registry (${req.registry.origin}); its credentials are not sent there`);
  }
  if (req.credentials) url.searchParams.set('account', req.credentials.username);
  const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': USER_AGENT };
  if (req.credentials) headers.Authorization = basicAuthorization(req.credentials);

  const started = Date.now();
  const res = await getFollowing(client, { url, headers, tls: req.tls, signal: req.signal, maxBodyBytes: MAX_TOKEN_RESPONSE_BYTES });
  if (res.status === 401 || res.status === 403) {
    throw new ProbeError('auth_failed', `token service ${url.origin} refused the credentials (HTTP ${res.status})`);
  }
  if (res.status === 429) throw new ProbeError('rate_limited', `token service ${url.origin} answered 429 Too Many Requests`);
  if (res.status !== 200) throw new ProbeError('token_error', `token service ${url.origin} answered HTTP ${res.status}`);
  let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
  try {
    parsed = JSON.parse(res.body.toString('utf8')) as typeof parsed;
  } catch {
    throw new ProbeError('token_error', `token service ${url.origin} answered something that is not JSON (${header(res.headers, 'content-type') ?? 'no content type'})`);
  }
  const token = typeof parsed.token === 'string' && parsed.token ? parsed.token : typeof parsed.access_token === 'string' ? parsed.access_token : '';
  if (!token) throw new ProbeError('token_error', `token service ${url.origin} answered without a token`);
  const expiresIn = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : DEFAULT_EXPIRES_IN_S;
  return { token, expiresAt: started + expiresIn * 1000 };
}
