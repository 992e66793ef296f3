/**
 * The catalog as the pull path sees it: for an upstream (a registry host such as `docker.io`, or a
 * namespace such as `quay.io/org`), the hosts a node's runtime should pull its images from, best first.
 *
 * The mirrors are the prefix index's (src/resolve): entries whose `mirror_of` covers the upstream, in
 * `/resolve`'s order (healthy, degraded, unknown; then deeper matches, name, id), with unhealthy ones left
 * out; the upstream itself stays the last resort. Where a host connects and how (URL, TLS settings) comes
 * from the entries, through a lookup the caller gives: the server reads its view, the node agent the
 * entries it received from the change feed. Pure: no I/O.
 */
import { domainKey, isHostLike, parsePrefix, type HealthStatus, type ImagePrefix, type PrefixIndex } from '../resolve';

/** The fields of an entry (its stored document or its API representation) that the pull configuration reads. */
export interface EntryDetails {
  container_registry_public_url?: unknown;
  container_registry_config?: unknown;
}

export type EntryLookup = (id: string) => EntryDetails | undefined;

/** One host a runtime may pull an upstream's images from. */
export interface PullHost {
  id: string;
  name: string;
  status: HealthStatus;
  /** Where to connect: the entry's public URL, without a trailing slash (the registry API is under `URL/v2/`). */
  url: string;
  /** The prefix the upstream's names have on this host (`cache:5000` for `docker.io`, `cache:5000/hub` when it keeps them under `hub/`). */
  location: string;
  /** The path of `location` under the host ('' when the names sit at its root). */
  path: string;
  plainHttp: boolean;
  skipVerify: boolean;
  /** PEM of the CA certificate(s) the entry trusts. */
  ca?: string;
}

export interface Upstream {
  /** The upstream's normalised prefix: `docker.io`, `quay.io/org`, `127.0.0.1:5000` (host lowercase). */
  prefix: string;
  /** The upstream's own entry when the catalog has one (its URL and TLS settings serve the last resort). */
  origin?: PullHost;
  /** Mirrors to try before the upstream, best first; unhealthy ones left out. */
  mirrors: PullHost[];
  /** Names of the mirrors left out because they are unhealthy (shown in the files' comments). */
  unhealthy: string[];
}

/** A prefix the pull configuration is asked about, or the reason it is no such prefix (an InputError's message). */
export type UpstreamName = { ok: true; prefix: ImagePrefix } | { ok: false; reason: string };

/**
 * Reads an upstream as a client names it (`docker.io`, `index.docker.io`, `Quay.IO`, `127.0.0.1:5000`):
 * Docker's normalisation (`index.docker.io` is `docker.io`), the host compared without case. `host: true`
 * asks for a registry host alone (containerd keeps one hosts.toml per host).
 */
export function parseUpstream(input: string, opts: { host?: boolean } = {}): UpstreamName {
  let p: ImagePrefix;
  try {
    p = parsePrefix(input);
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  if (!isHostLike(p.domain)) return { ok: false, reason: `"${p.domain}" is not a registry host (it needs a "." or ":", or is localhost)` };
  if (opts.host && p.path !== '') return { ok: false, reason: 'containerd keeps one hosts.toml per registry host: give the host alone, without a path' };
  const domain = domainKey(p.domain);
  return { ok: true, prefix: { domain, path: p.path, name: p.path ? `${domain}/${p.path}` : domain } };
}

/** The entry's public URL without a trailing slash, query or fragment, or undefined when it is no http(s) URL. */
function baseUrl(raw: unknown): URL | undefined {
  if (typeof raw !== 'string') return undefined;
  try {
    const url = new URL(raw);
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username || url.password) return undefined;
    url.search = '';
    url.hash = '';
    return url;
  } catch {
    return undefined;
  }
}

function pullHost(c: { container_registry_id: string; container_registry_name: string; status: HealthStatus }, location: string, details: EntryDetails | undefined): PullHost | undefined {
  const url = baseUrl(details?.container_registry_public_url);
  if (!url) return undefined;
  const config = (details?.container_registry_config ?? {}) as Record<string, unknown>;
  const slash = location.indexOf('/');
  const host: PullHost = {
    id: c.container_registry_id,
    name: c.container_registry_name,
    status: c.status,
    url: url.href.replace(/\/+$/, ''),
    location,
    path: slash < 0 ? '' : location.slice(slash + 1),
    plainHttp: url.protocol === 'http:',
    skipVerify: config.insecure_skip_tls_verify === true,
  };
  if (typeof config.ca_certificate === 'string' && config.ca_certificate !== '') host.ca = config.ca_certificate;
  return host;
}

/**
 * The hosts that serve `prefix` (parsed by parseUpstream), or null when no entry of the catalog mirrors it
 * (whatever their health: an upstream whose mirrors are all unhealthy still has its file, naming none).
 */
export function upstreamOf(index: PrefixIndex, lookup: EntryLookup, prefix: ImagePrefix): Upstream | null {
  const candidates = index.mirrorsOf(prefix).filter((c) => c.location !== prefix.name);
  if (candidates.length === 0) return null;
  const mirrors: PullHost[] = [];
  const unhealthy: string[] = [];
  for (const c of candidates) {
    if (c.status === 'unhealthy') {
      unhealthy.push(c.container_registry_name);
      continue;
    }
    const host = pullHost(c, c.location, lookup(c.container_registry_id));
    if (host) mirrors.push(host);
  }
  const owner = index.ownerOf(prefix);
  const origin = owner ? pullHost(owner, prefix.name, lookup(owner.container_registry_id)) : undefined;
  return { prefix: prefix.name, ...(origin ? { origin } : {}), mirrors, unhealthy };
}

/** Every upstream some entry mirrors, by prefix (code-point order, so the rendered files are stable). */
export function allUpstreams(index: PrefixIndex, lookup: EntryLookup): Upstream[] {
  const out: Upstream[] = [];
  for (const key of [...index.mirroredPrefixes()].sort()) {
    const u = upstreamOf(index, lookup, parsePrefix(key));
    if (u) out.push(u);
  }
  return out;
}
