/**
 * The health probe of SPEC section 6: `GET {public_url}/v2/`, registry detection, Basic and Bearer
 * authentication with stored credentials, and every outcome mapped to a status and a machine-readable code.
 * The prober never throws: every failure, whatever raised it, becomes a result.
 */
import type { Config } from '../config';
import { parseChallenges, pickChallenge, schemeName, type Challenge } from './challenge';
import { createHttpClient, getFollowing, header, USER_AGENT, type HttpClient, type HttpResponse, type TlsSettings } from './client';
import { startDeadline } from './deadline';
import { classifyError, ProbeError, type ProbeErrorCode } from './errors';
import { apiBase } from './registry-url';
import { inCredentialScope } from './scope';
import { basicAuthorization, fetchToken } from './token';
import type { Prober, ProbeResult, ProbeStatus, ProbeTarget } from './types';

export type ClosableProber = Prober & { close(): Promise<void> };

const MAX_PING_BODY_BYTES = 64 * 1024;
/** Failures that mean "up, but not usable now". */
const DEGRADED: ReadonlySet<ProbeErrorCode> = new Set<ProbeErrorCode>(['auth_failed', 'rate_limited', 'token_error']);

export function createProber(config: Config, client: HttpClient = createHttpClient(config)): ClosableProber {
  const prober = async (target: ProbeTarget, signal?: AbortSignal): Promise<ProbeResult> => {
    const started = performance.now();
    const result: ProbeResult = {
      status: 'unhealthy',
      checked_at: new Date().toISOString(),
      latency_ms: 0,
      http_status: null,
      api_version: null,
      auth_required: false,
      auth: null,
      tls: null,
      error: null,
      detail: null,
    };
    const deadline = startDeadline(config.PROBE_TIMEOUT_MS, signal);
    try {
      await probe(client, target, deadline.signal, result);
    } catch (err) {
      const { code, detail } = classifyError(err, deadline);
      fail(result, DEGRADED.has(code) && result.http_status !== null ? 'degraded' : 'unhealthy', code, detail);
    } finally {
      deadline.dispose();
      result.latency_ms = Math.round((performance.now() - started) * 10) / 10;
    }
    return result;
  };
  return Object.assign(prober, { close: () => client.close() });
}

function fail(result: ProbeResult, status: ProbeStatus, code: ProbeErrorCode, detail: string): void {
  result.status = status;
  result.error = code;
  result.detail = detail.length > 2048 ? `${detail.slice(0, 2045)}...` : detail;
}

/** Retry-After is believed up to a day ahead. */
const MAX_RETRY_AFTER_MS = 86_400_000;

/** The time a Retry-After header (delay in seconds, or an HTTP date) names, or null when absent or invalid. */
export function retryAfter(value: string | undefined, now = Date.now()): string | null {
  if (!value) return null;
  const v = value.trim();
  const at = /^\d{1,9}$/.test(v) ? now + Number(v) * 1000 : Date.parse(v);
  if (Number.isNaN(at) || at <= now) return null;
  return new Date(Math.min(at, now + MAX_RETRY_AFTER_MS)).toISOString();
}

function rateLimited(result: ProbeResult, res: HttpResponse): void {
  const until = retryAfter(header(res.headers, 'retry-after'));
  if (until) result.retry_after = until;
  fail(result, 'degraded', 'rate_limited', `${res.url.pathname} answered 429 Too Many Requests${until ? ` (Retry-After: until ${until})` : ''}`);
}

async function probe(client: HttpClient, target: ProbeTarget, signal: AbortSignal, result: ProbeResult): Promise<void> {
  const tls: TlsSettings = { insecureSkipTlsVerify: target.insecureSkipTlsVerify, caCertificate: target.caCertificate };
  const ping = (url: URL, authorization?: string): Promise<HttpResponse> => {
    const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': USER_AGENT };
    if (authorization) headers.Authorization = authorization;
    return getFollowing(client, { url, headers, tls, signal, maxBodyBytes: MAX_PING_BODY_BYTES });
  };

  const base = apiBase(target.url);
  const first = await ping(base);
  record(result, first);
  const challenges = parseChallenges(first.headers['www-authenticate']);
  const challenge = pickChallenge(challenges);
  result.auth = {
    required: false,
    scheme: challenge ? schemeName(challenge) : (challenges[0]?.scheme ?? null),
    realm: challenge?.params.realm ?? null,
    service: challenge?.params.service ?? null,
  };

  if (first.status === 200) {
    if (looksLikeRegistry(first, challenges.length > 0)) return healthy(result);
    return fail(result, 'unhealthy', 'not_a_registry', `HTTP 200 from ${first.url.pathname} is not a registry (${header(first.headers, 'content-type') ?? 'no content type'})`);
  }
  if (first.status === 429) return rateLimited(result, first);
  if ((first.status === 401 || first.status === 403) && (challenges.length > 0 || result.api_version !== null)) {
    result.auth_required = true;
    result.auth.required = true;
    if (!target.credentials) return healthy(result);
    // Credentials go to the registry's own origin only: not after a redirect elsewhere, nor down to http.
    if (!inCredentialScope(base, first.url)) {
      return fail(result, 'degraded', 'auth_failed', `${base.origin} redirected to ${first.url.origin}, which asks for credentials; they are only sent to ${base.origin}`);
    }
    if (!challenge) {
      return fail(result, 'degraded', 'auth_failed', `registry asks for an unsupported authentication scheme (${challenges[0]?.scheme ?? 'none'})`);
    }
    const authorization = await authorize(client, challenge, target, base, tls, signal);
    const second = await ping(first.url, authorization);
    record(result, second);
    if (second.status === 200) return healthy(result);
    if (second.status === 401 || second.status === 403) {
      return fail(result, 'degraded', 'auth_failed', `${schemeName(challenge)} credentials refused (HTTP ${second.status})`);
    }
    if (second.status === 429) return rateLimited(result, second);
    return fail(result, 'unhealthy', 'http_error', `authenticated ${second.url.pathname} answered HTTP ${second.status}`);
  }
  return fail(result, 'unhealthy', 'http_error', `${first.url.pathname} answered HTTP ${first.status}`);
}

/** The Authorization header that answers a challenge with the target's credentials. */
export async function authorize(
  client: HttpClient,
  challenge: Challenge,
  target: ProbeTarget,
  registry: URL,
  tls: TlsSettings,
  signal: AbortSignal,
  scopes: readonly string[] = challenge.params.scope ? challenge.params.scope.split(' ') : [],
): Promise<string> {
  if (challenge.scheme === 'basic') {
    if (!target.credentials) throw new ProbeError('auth_failed', 'registry requires Basic credentials and none are stored');
    return basicAuthorization(target.credentials);
  }
  const realm = challenge.params.realm;
  if (!realm) throw new ProbeError('token_error', 'Bearer challenge without a realm');
  try {
    const token = await fetchToken(client, { registry, realm, service: challenge.params.service, scopes, credentials: target.credentials, tls, signal });
    return `Bearer ${token.token}`;
  } catch (err) {
    if (err instanceof ProbeError || signal.aborted) throw err;
    // The registry answered; its token service did not: up, but not usable now.
    const { detail } = classifyError(err, { timedOut: () => false });
    throw new ProbeError('token_error', `token service ${realm} unreachable: ${detail}`);
  }
}

function record(result: ProbeResult, res: HttpResponse): void {
  result.http_status = res.status;
  result.api_version = header(res.headers, 'docker-distribution-api-version') ?? result.api_version;
  if (res.tls) result.tls = res.tls;
}

function healthy(result: ProbeResult): void {
  result.status = 'healthy';
  result.error = null;
  result.detail = null;
}

/** A registry shows itself by its API version header, a JSON body, or an authentication challenge. */
function looksLikeRegistry(res: HttpResponse, challenged: boolean): boolean {
  if (header(res.headers, 'docker-distribution-api-version') !== undefined || challenged) return true;
  const type = header(res.headers, 'content-type') ?? '';
  if (/html/i.test(type)) return false;
  const text = res.body.toString('utf8').trim();
  if (!text.startsWith('{') && !text.startsWith('[')) return false;
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
