/**
 * API keys and roles (SPEC section 8).
 *
 * `authenticate` runs before every protected route: it finds who is calling from `Authorization: Bearer KEY`
 * or `Authorization: Simple KEY` (401 with `WWW-Authenticate` when the key is missing or unknown), or, in
 * protected mode (no API_KEYS), serves loopback clients only (403 for the others), and of their requests only
 * those addressed to a loopback name (`Host`) and, for writes, sent from no other origin: a page on another
 * site, or on a name an attacker rebinds to 127.0.0.1 (DNS rebinding), gets a 403 too. Routes then state what
 * they need in words: `can('write')`, which answers 403 naming the roles that may.
 *
 * Keys are compared in constant time: the presented key and every configured key are hashed to 32 bytes
 * (SHA-256) and compared with crypto.timingSafeEqual, always against every configured key.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { Request, RequestHandler, Response } from 'express';
import type { ApiKey, Role } from '../config';
import { ForbiddenError, UnauthorizedError } from '../errors';
import { registerSecret } from '../logger';

/**
 * What a route may ask for, and the roles that have it. `reader` < `writer` < `admin` each hold what the role
 * before holds; `puller` (a node: its agent and kubelet credential provider) may read and fetch pull
 * credentials, nothing else, and only `admin` shares the second with it.
 */
export const PERMISSIONS = {
  /** read entries, query the catalog, read the health report and the metrics, follow the feed, fetch pull configuration */
  read: ['reader', 'puller', 'writer', 'admin'],
  /** create and update entries */
  write: ['writer', 'admin'],
  /** run a health probe on demand (sends traffic to a registry, stores the result) */
  probe: ['writer', 'admin'],
  /** delete entries */
  delete: ['admin'],
  /** manage webhook subscriptions (they send catalog data to a URL of the caller's choosing) */
  webhooks: ['admin'],
  /** receive stored registry passwords (POST /pull-credentials) */
  pull_credentials: ['puller', 'admin'],
} as const satisfies Record<string, readonly Role[]>;
export type Permission = keyof typeof PERMISSIONS;

/** The startup line of protected mode (main.ts); the log redaction keeps its `API_KEYS=role:key` readable. */
export const PROTECTED_MODE_HINT =
  'protected mode: API_KEYS is unset, so only loopback clients (127.0.0.0/8, ::1) are served, addressed as localhost or a loopback address (PROTECTED_MODE_HOSTS adds names); set API_KEYS=role:key,... to serve the network';

/** True when `role` has `permission`. */
export function roleCan(role: Role, permission: Permission): boolean {
  return (PERMISSIONS[permission] as readonly Role[]).includes(role);
}

/** The roles that have `permission`, in words: "writer or admin", "reader, puller, writer or admin". */
export function rolesWith(permission: Permission): string {
  const roles: readonly string[] = PERMISSIONS[permission];
  return roles.length === 1 ? roles[0]! : `${roles.slice(0, -1).join(', ')} or ${roles[roles.length - 1]}`;
}

export interface Principal {
  role: Role;
  /** Stable, non-secret id of the key (first 16 hex digits of its SHA-256), or `loopback` in protected mode. */
  id: string;
}

export interface Access {
  /** Protected mode: no keys configured, loopback clients only. */
  readonly protectedMode: boolean;
  authenticate: RequestHandler;
  can(permission: Permission): RequestHandler;
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

const CHALLENGE = 'Bearer realm="registry-db", Simple realm="registry-db"';
const SCHEME = /^\s*(Bearer|Simple)\s+(\S+)\s*$/i;

function unauthorized(detail: string): UnauthorizedError {
  const e = new UnauthorizedError(detail);
  e.headers['WWW-Authenticate'] = CHALLENGE;
  return e;
}

/** True when the address is a loopback one: 127.0.0.0/8, ::1, or 127.x mapped into IPv6 (::ffff:127.x.y.z). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.trim().toLowerCase();
  const v4 = a.startsWith('::ffff:') && isIP(a.slice(7)) === 4 ? a.slice(7) : a;
  if (isIP(v4) === 4) return v4.startsWith('127.');
  if (isIP(a) === 6) return a === '::1' || a === '0:0:0:0:0:0:0:1';
  return false;
}

/**
 * The protected-mode decision: served only when the socket's peer is a loopback address and, if the request
 * came through proxies that name the original client (`X-Forwarded-For`), every address they name is too.
 * A local reverse proxy therefore does not turn a remote client into a local one.
 */
export function isLoopbackClient(remoteAddress: string | undefined, forwardedFor?: string): boolean {
  const forwarded = (forwardedFor ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  return isLoopbackAddress(remoteAddress) && forwarded.every(isLoopbackAddress);
}

/**
 * True when a `Host` header names this machine: `localhost`, a loopback address (any spelling the URL parser
 * normalises, e.g. `127.1`, `[::1]`), or one of `names` (PROTECTED_MODE_HOSTS); any port. A request without a
 * Host (HTTP/1.0) passes: no browser sends one, so it cannot come from a rebound page.
 */
export function isLoopbackHost(host: string | undefined, names: readonly string[] = []): boolean {
  if (host === undefined) return true;
  if (/[\s@/?#\\]/.test(host)) return false;
  let hostname: string;
  try {
    hostname = new URL(`http://${host}`).hostname.replace(/\.$/, '');
  } catch {
    return false;
  }
  if (hostname.startsWith('[')) {
    const v6 = hostname.slice(1, -1);
    return isLoopbackAddress(v6) || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(v6);
  }
  return hostname === 'localhost' || isLoopbackAddress(hostname) || names.includes(hostname);
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * What marks a request as a write from another origin (the header and its value), or undefined: a browser
 * labels its requests with `Sec-Fetch-Site` and, on writes, `Origin`; clients that send neither (curl, the
 * seed script, peers) are not browsers and pass.
 */
export function crossOriginWrite(method: string, headers: { host?: string; origin?: string; secFetchSite?: string }): string | undefined {
  if (SAFE_METHODS.has(method)) return undefined;
  const site = headers.secFetchSite?.toLowerCase();
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return `Sec-Fetch-Site: ${site}`;
  if (headers.origin === undefined) return undefined;
  try {
    const origin = new URL(headers.origin);
    if (headers.host !== undefined && origin.host === new URL(`http://${headers.host}`).host) return undefined;
  } catch {
    // `Origin: null` (sandboxed frames, file: pages) and anything unparsable: not this service's origin.
  }
  return `Origin: ${headers.origin}`;
}

/** The principal of a request that passed `authenticate`. */
export function principalOf(res: Response): Principal | undefined {
  return res.locals.principal as Principal | undefined;
}

/** 403 for a protected-mode request a page on another name or origin could have sent (DNS rebinding, CSRF). */
function refuseForeignPage(req: Request, hosts: readonly string[]): void {
  const host = req.get('Host');
  if (!isLoopbackHost(host, hosts)) {
    throw new ForbiddenError(
      `This service runs in protected mode and serves only requests addressed to this machine by a loopback name (localhost, 127.0.0.1, [::1]${hosts.length > 0 ? `, ${hosts.join(', ')}` : ''}); this one was addressed to "${host}". ` +
        'A name that resolves to 127.0.0.1 but is not one of these could be a web page rebinding its own name to this machine (DNS rebinding). ' +
        'Use http://localhost:PORT, add the name to PROTECTED_MODE_HOSTS, or set API_KEYS.',
      [{ path: 'Host', message: 'is not a loopback name or address, nor in PROTECTED_MODE_HOSTS' }],
    );
  }
  const foreign = crossOriginWrite(req.method, { host, origin: req.get('Origin'), secFetchSite: req.get('Sec-Fetch-Site') });
  if (foreign) {
    const header = foreign.slice(0, foreign.indexOf(':'));
    throw new ForbiddenError(
      `This service runs in protected mode and refuses writes sent by a web page of another origin (${foreign}): only the status page served here, and clients that are not browsers, may change the catalog. Set API_KEYS to serve other origins with keys.`,
      [{ path: header, message: 'names another origin than this service on a request that is not GET or HEAD' }],
    );
  }
}

export function createAccess(keys: readonly ApiKey[], opts: { hosts?: readonly string[] } = {}): Access {
  const hosts = opts.hosts ?? [];
  const known = keys.map(({ role, key }) => {
    registerSecret(key);
    const hash = sha256(key);
    return { role, hash, id: hash.toString('hex').slice(0, 16) };
  });
  const protectedMode = known.length === 0;

  const identify = (header: string | undefined): Principal => {
    if (!header) throw unauthorized('This route needs an API key: send `Authorization: Bearer KEY` (or `Simple KEY`).');
    const m = SCHEME.exec(header);
    if (!m) throw unauthorized('The Authorization header must be `Bearer KEY` or `Simple KEY`.');
    const presented = sha256(m[2]!);
    let found: (typeof known)[number] | undefined;
    for (const k of known) if (timingSafeEqual(presented, k.hash) && !found) found = k;
    if (!found) throw unauthorized('The API key is not valid.');
    return { role: found.role, id: found.id };
  };

  const authenticate: RequestHandler = (req, res, next) => {
    if (protectedMode) {
      if (!isLoopbackClient(req.socket.remoteAddress, req.get('X-Forwarded-For'))) {
        throw new ForbiddenError(
          'This service runs in protected mode: no API keys are configured, so only clients on this machine (loopback) are served. ' +
            'Set API_KEYS to comma-separated role:key pairs (roles admin, writer, reader, puller), e.g. API_KEYS=admin:<random key>,reader:<random key>, ' +
            'restart the service and send `Authorization: Bearer <key>`.',
        );
      }
      refuseForeignPage(req, hosts);
      res.locals.principal = { role: 'admin', id: 'loopback' } satisfies Principal;
      return next();
    }
    res.locals.principal = identify(req.get('Authorization'));
    next();
  };

  const can = (permission: Permission): RequestHandler => {
    const needed = rolesWith(permission);
    return (_req, res, next) => {
      const who = principalOf(res);
      if (!who) throw unauthorized('This route needs an API key.');
      if (!roleCan(who.role, permission)) {
        throw new ForbiddenError(`The ${who.role} role cannot ${permission} here; it needs the ${needed} role.`);
      }
      next();
    };
  };

  return { protectedMode, authenticate, can };
}
