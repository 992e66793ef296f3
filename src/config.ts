/**
 * Configuration: every environment variable the service reads, parsed once at startup into one typed,
 * frozen object. Nothing else reads process.env. An invalid value throws a ConfigError naming the variable.
 * `npm run config:doc` prints the README table from the `doc` fields below.
 */
import { isIP } from 'node:net';
import path from 'node:path';
import { validate as validateCron } from 'node-cron';
import { cidrText, parseCidr, type Cidr } from './lib/cidr';

export class ConfigError extends Error {
  constructor(readonly variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

interface Spec<T> {
  doc: string;
  /** The default as the README shows it. */
  default: string;
  /** A default that depends on other variables (the README shows `default`). */
  defaultFrom?: (env: Env) => string;
  parse: (raw: string, name: string) => T;
}

/** The placeholder deploy/secret.yaml ships with: a value holding it was never replaced. */
const PLACEHOLDER = /change-?me/i;
const noPlaceholder = <T>(parse: (raw: string, name: string) => T) => (raw: string, name: string): T => {
  if (PLACEHOLDER.test(raw)) throw new ConfigError(name, 'still holds the CHANGE-ME placeholder of deploy/secret.yaml; replace it with a real value');
  return parse(raw, name);
};

const int = (min: number, max: number) => (raw: string, name: string): number => {
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(name, `must be an integer, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
};
const str = (raw: string): string => raw;
const optional = (raw: string): string | undefined => (raw === '' ? undefined : raw);
const oneOf = <T extends string>(...values: T[]) => (raw: string, name: string): T => {
  if (!(values as string[]).includes(raw)) throw new ConfigError(name, `must be one of ${values.join(', ')}, got "${raw}"`);
  return raw as T;
};
const bool = (raw: string, name: string): boolean => {
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(name, `must be true or false, got "${raw}"`);
};
const list = (raw: string): string[] => raw.split(',').map((s) => s.trim()).filter(Boolean);

export const ROLES = ['reader', 'writer', 'admin', 'puller'] as const;
export type Role = (typeof ROLES)[number];
export interface ApiKey {
  role: Role;
  key: string;
}
/** `role:key,role:key`. Error messages name the entry by position, never by its key. */
const apiKeys = (raw: string, name: string): ApiKey[] => {
  const seen = new Set<string>();
  return list(raw).map((pair, i) => {
    const at = pair.indexOf(':');
    const role = pair.slice(0, at).trim();
    const key = pair.slice(at + 1).trim();
    if (at < 0 || !(ROLES as readonly string[]).includes(role)) {
      throw new ConfigError(name, `entry ${i + 1} must be ROLE:KEY with ROLE one of ${ROLES.join(', ')}`);
    }
    if (key.length < 16 || /[\s:,]/.test(key)) throw new ConfigError(name, `entry ${i + 1} (${role}) needs a key of at least 16 characters without spaces, commas or colons`);
    if (seen.has(key)) throw new ConfigError(name, `entry ${i + 1} (${role}) repeats a key given before`);
    seen.add(key);
    return { role: role as Role, key };
  });
};
/** A cron expression (node-cron's syntax, seconds optional), or `off` (null: never). */
const cron = (raw: string, name: string): string | null => {
  if (raw.trim().toLowerCase() === 'off') return null;
  if (!validateCron(raw)) throw new ConfigError(name, `must be a cron expression (e.g. "*/5 * * * *") or "off", got "${raw}"`);
  return raw;
};

/** A CIDR list (`10.0.0.0/8,::1/128`); a bare address means the single host. */
const cidrs = (raw: string, name: string): Cidr[] =>
  list(raw).map((entry) => {
    const c = parseCidr(entry);
    if (!c) throw new ConfigError(name, `"${entry}" is not a CIDR range (expected e.g. 10.0.0.0/8 or fd00::/8)`);
    return c;
  });

/** Peer names: what mirrored ids are prefixed with (`<peer>:<id>`), so letters, digits and dashes only. */
const PEER_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** `name=VALUE,name=VALUE`, names unique. `what` describes VALUE in messages; `secret` keeps values out of them. */
const namedPairs = (what: string, check: (value: string) => string | undefined, secret = false) => (raw: string, name: string): Array<{ name: string; value: string }> => {
  const seen = new Set<string>();
  return list(raw).map((pair, i) => {
    const at = pair.indexOf('=');
    const peer = pair.slice(0, at).trim();
    const value = pair.slice(at + 1).trim();
    const where = `entry ${i + 1}${PEER_NAME.test(peer) ? ` (${peer})` : ''}`;
    if (at < 0 || !PEER_NAME.test(peer)) throw new ConfigError(name, `${where} must be NAME=${what} with NAME of lowercase letters, digits and dashes (at most 63)`);
    if (seen.has(peer)) throw new ConfigError(name, `${where} repeats the name ${peer}`);
    seen.add(peer);
    const problem = check(value);
    if (problem) throw new ConfigError(name, `${where}: ${secret ? problem : `"${value}" ${problem}`}`);
    return { name: peer, value };
  });
};
export interface Peer {
  name: string;
  /** The peer's base URL, without a trailing slash. */
  url: string;
}
const peers = (raw: string, name: string): Peer[] =>
  namedPairs('URL', (v) => {
    try {
      const u = new URL(v);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'must be an http(s) URL';
      if (u.username || u.password || u.search || u.hash) return 'must not carry credentials, a query or a fragment (keys go in PEER_KEYS)';
      return undefined;
    } catch {
      return 'is not a URL';
    }
  })(raw, name).map((p) => ({ name: p.name, url: p.value.replace(/\/+$/, '') }));
const peerKeys = (raw: string, name: string): Map<string, string> =>
  new Map(namedPairs('KEY', (v) => (v.length < 16 || /[\s,]/.test(v) ? 'needs a key of at least 16 characters without spaces or commas' : undefined), true)(raw, name).map((p) => [p.name, p.value]));

/**
 * TRUST_PROXY as Express takes it: `false`, `true` (every hop: a client can choose its address), a hop count,
 * or proxy addresses, CIDR ranges and proxy-addr's names. `0` is `false`.
 */
export type TrustProxy = boolean | number | readonly string[];
const TRUST_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);
const trustProxy = (raw: string, name: string): TrustProxy => {
  const v = raw.trim();
  if (/^\d+$/.test(v)) {
    const hops = int(0, 64)(v, name);
    return hops === 0 ? false : hops;
  }
  if (/^(true|yes|on|false|no|off)$/i.test(v)) return bool(v, name);
  const entries = list(v);
  if (entries.length === 0) throw new ConfigError(name, 'must be a hop count, true, false, or proxy addresses/CIDR ranges/loopback/linklocal/uniquelocal');
  return entries.map((entry) => {
    if (TRUST_NAMES.has(entry.toLowerCase())) return entry.toLowerCase();
    try {
      return cidrText(cidrs(entry, name)[0]!);
    } catch {
      throw new ConfigError(name, `"${entry}" is not a hop count, an address, a CIDR range or one of loopback, linklocal, uniquelocal`);
    }
  });
};

/** Extra Host names protected mode serves (lower case, without a port), e.g. this machine's name. */
const hostNames = (raw: string, name: string): string[] =>
  list(raw).map((entry) => {
    const host = entry.toLowerCase().replace(/\.$/, '');
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(host) && isIP(host) === 0) {
      throw new ConfigError(name, `"${entry}" is not a host name or an address (give it without scheme or port)`);
    }
    return host;
  });

/** The variables, their defaults and their meaning. Order is the README's order. */
export const configSpec = {
  PORT: { doc: 'TCP port of the HTTP API.', default: '8080', parse: int(0, 65535) },
  HOST: { doc: 'Address the HTTP API listens on.', default: '0.0.0.0', parse: str },
  HTTP_MAX_CONNECTIONS: {
    doc: 'Most open client connections per process (more are dropped at once); keep it well under the file descriptor limit. Connections not being served (no whole request head yet, a request body still arriving, or idle between keep-alive requests) hold at most half of them (a newer one closes the oldest).',
    default: '1024',
    parse: int(16, 1_000_000),
  },
  HTTP_CONNECTION_IDLE_TIMEOUT_MS: { doc: 'A connection that has not sent a whole request head this long after it opened (also one that never sends a byte), or after its last response, is closed.', default: '10000', parse: int(100, 600_000) },
  HTTP_HEADERS_TIMEOUT_MS: { doc: 'Node `server.headersTimeout`: time to receive a request head, from its first byte (checked every second).', default: '10000', parse: int(100, 600_000) },
  HTTP_REQUEST_TIMEOUT_MS: { doc: 'Node `server.requestTimeout`: time to receive a whole request, body included (408 after it); at least HTTP_HEADERS_TIMEOUT_MS.', default: '30000', parse: int(100, 3_600_000) },
  HTTP_BODY_TIMEOUT_MS: {
    doc: 'A request body must be complete this long after its head arrived, else a 408 (or, when nobody reads it, the connection is closed); until then the connection counts as not yet speaking. Raise it with BODY_LIMIT_BYTES for slow links; at most HTTP_REQUEST_TIMEOUT_MS.',
    default: '10000',
    parse: int(100, 3_600_000),
  },
  HTTP_KEEP_ALIVE_TIMEOUT_MS: { doc: 'Node `server.keepAliveTimeout`: how long an idle keep-alive connection stays open after a response (set it above a load balancer\'s idle timeout).', default: '5000', parse: int(100, 600_000) },
  MONGODB_URI: {
    doc: 'MongoDB connection string (MongoDB 5+, replica set or Atlas). Unset: the embedded default database (a mongod already on the machine, else FerretDB) under DATA_DIR. When set, `CREDENTIALS_KEY` is required.',
    default: '',
    parse: noPlaceholder(optional),
  },
  MONGODB_DB: { doc: 'Database name.', default: 'registry_db', parse: str },
  DATA_DIR: { doc: 'Where the embedded database and the generated credentials key live.', default: './data', parse: (raw: string) => path.resolve(raw) },
  EMBEDDED_DB: {
    doc: 'Embedded backend when MONGODB_URI is unset: `auto` (a mongod already on the machine, else FerretDB), `mongod` or `ferretdb`. A DATA_DIR that holds data stays with its backend (recorded in DATA_DIR/backend.json); asking for the other one stops the start.',
    default: 'auto',
    parse: oneOf('auto', 'mongod', 'ferretdb'),
  },
  EMBEDDED_DB_DOWNLOAD: {
    doc: 'With `EMBEDDED_DB=mongod` only: `true` lets mongodb-memory-server download a mongod when none is on the machine. Otherwise starting never downloads anything.',
    default: 'false',
    parse: bool,
  },
  LOG_LEVEL: { doc: 'winston log level.', default: 'info', parse: oneOf('error', 'warn', 'info', 'http', 'debug') },
  BODY_LIMIT_BYTES: { doc: 'Largest accepted request body (413 above).', default: '262144', parse: int(1024, 16 * 1024 * 1024) },
  QUERY_TIMEOUT_MS: { doc: 'Time limit of every query: sent to the database as maxTimeMS, and the budget of a query answered from the in-memory view (503 naming it when spent).', default: '5000', parse: int(100, 600000) },
  CREDENTIALS_KEY: {
    doc: 'Base64 of 32 bytes: AES-256-GCM key for stored registry credentials (`openssl rand -base64 32`). Required with `MONGODB_URI` (every replica must use the same key). Unset with the embedded database: a key generated once into DATA_DIR/credentials.key.',
    default: '',
    parse: noPlaceholder((raw: string, name: string): Buffer | undefined => {
      if (raw === '') return undefined;
      const key = Buffer.from(raw, 'base64');
      if (key.length !== 32) throw new ConfigError(name, `must be base64 of exactly 32 bytes, got ${key.length} bytes`);
      return key;
    }),
  },
  PROBE_ALLOWED_NETWORKS: {
    doc: 'CIDR list probes (and token realms, redirects) may reach, checked on the resolved address. Loopback, link-local and metadata (169.254.0.0/16, fe80::/10, in every IPv6 spelling), multicast, 0.0.0.0/8 and `::` stay refused inside a broad range such as `0.0.0.0/0`; list a range inside them (e.g. `127.0.0.0/8`) to open it. Default in protected mode (no `API_KEYS`): also `127.0.0.0/8,::1/128`.',
    default: '0.0.0.0/0,::/0',
    defaultFrom: (env: Env) => (list(env.API_KEYS ?? '').length > 0 ? '0.0.0.0/0,::/0' : '0.0.0.0/0,::/0,127.0.0.0/8,::1/128'),
    parse: cidrs,
  },
  PROBE_DENIED_NETWORKS: {
    doc: 'CIDR list probes never reach; wins over the allowed list (added to the refused special ranges).',
    default: '',
    parse: cidrs,
  },
  PROBE_CONNECT_TIMEOUT_MS: { doc: 'Probe connect timeout.', default: '2000', parse: int(50, 60000) },
  PROBE_TIMEOUT_MS: { doc: 'Probe total timeout.', default: '5000', parse: int(100, 120000) },
  PROBE_CONCURRENCY: { doc: 'Probes run at once by one sweep.', default: '16', parse: int(1, 1024) },
  STORAGE_MAX_REPOSITORIES: { doc: 'Storage refresh: most repositories read from the catalog (more: `truncated`).', default: '10000', parse: int(1, 10_000_000) },
  STORAGE_MAX_TAGS: { doc: 'Storage refresh: most tags counted per registry (more: `truncated`).', default: '100000', parse: int(1, 100_000_000) },
  STORAGE_MAX_MANIFESTS: { doc: 'Storage refresh: most manifests read per registry (more: `truncated`).', default: '100000', parse: int(1, 100_000_000) },
  STORAGE_MAX_BLOBS: {
    doc: 'Storage refresh: most distinct digests (manifests, configs, layers) counted per registry (more: `truncated`); each costs about 40 bytes outside the heap while the refresh runs.',
    default: '1000000',
    parse: int(1, 50_000_000),
  },
  STORAGE_DIGEST_MEMORY_MB: {
    doc: 'Storage refresh: memory (outside the heap) that the digest sets of all concurrent refreshes of the process may hold together, about 40 bytes per digest; a refresh that finds it spent stops there (`truncated`).',
    default: '128',
    parse: int(1, 65_536),
  },
  STORAGE_TIMEOUT_MS: { doc: 'Storage refresh: time limit per registry (hit: `truncated`).', default: '600000', parse: int(1000, 86_400_000) },
  STORAGE_CONCURRENCY: { doc: 'Storage refresh: registry API requests in flight per registry.', default: '4', parse: int(1, 64) },
  INVENTORY_MEMORY_MB: {
    doc: 'Memory (mostly outside the heap) that the inventories kept for `/resolve` presence and `/images` may take together, about 90 bytes per tag; a registry whose inventory does not fit is left out (its presence is `null`, logged). `0` keeps none in memory.',
    default: '64',
    parse: int(0, 65_536),
  },
  VERIFY_CONCURRENCY: { doc: '`/resolve?verify=true`: live manifest checks in flight at once for one request (all of them within PROBE_TIMEOUT_MS).', default: '8', parse: int(1, 256) },
  HEALTH_CRON: { doc: 'Cron schedule of health sweeps, or `off`.', default: '*/5 * * * *', parse: cron },
  STORAGE_CRON: { doc: 'Cron schedule of storage refreshes, or `off`.', default: '0 * * * *', parse: cron },
  HEALTH_HISTORY_DAYS: { doc: 'Days of probe history kept.', default: '7', parse: int(1, 3650) },
  API_KEYS: {
    doc: 'Comma-separated `role:key` pairs (roles `admin`, `writer`, `reader`, `puller`; keys of at least 16 characters, no spaces, commas or colons), sent as `Authorization: Bearer KEY` or `Authorization: Simple KEY`. Unset: protected mode (loopback clients only).',
    default: '',
    parse: noPlaceholder(apiKeys),
  },
  PROTECTED_MODE_HOSTS: {
    doc: 'Protected mode (no `API_KEYS`) serves only requests whose `Host` is `localhost`, a loopback address or one of these comma-separated names (e.g. this machine\'s name), and refuses cross-origin writes: a guard against DNS rebinding.',
    default: '',
    parse: hostNames,
  },
  TRUST_PROXY: {
    doc: 'Which proxies in front of the service may name the client in `X-Forwarded-For` (Express `trust proxy`; the address is what the failed-authentication budget and the per-address rate limits count): a hop count (`1`: one reverse proxy or ingress that appends the client\'s address; the recommended setting behind one), a list of proxy addresses, CIDR ranges or the names `loopback`, `linklocal`, `uniquelocal`, or `false` (clients connect directly). `true` trusts every hop, so a client picks its own address by sending the header: a warning at start. Protected mode always checks the socket peer and every forwarded address.',
    default: 'false',
    parse: trustProxy,
  },
  RATE_LIMIT_WINDOW_MS: { doc: 'Length of one rate-limit window (fixed windows, shared by all replicas through the database).', default: '60000', parse: int(1000, 86_400_000) },
  RATE_LIMIT_MAX: { doc: 'Requests one client (API key, or address in protected mode) may make per window on all routes together; `0` disables the limit.', default: '1000', parse: int(0, 100_000_000) },
  PROBE_RATE_LIMIT_MAX: { doc: 'Tighter budget per client and window for `GET /check_container_health/:id` (each call sends traffic to a registry); `0` disables it.', default: '30', parse: int(0, 100_000_000) },
  PULL_CREDENTIALS_RATE_LIMIT_MAX: {
    doc: 'Budget per API key and window for `POST /pull-credentials` (each answer discloses stored registry passwords); every request is decided on the shared counters, so replicas never over-admit. Kubelets cache answers (`cacheDuration`), so a fleet sharing one puller key needs about one request per node, registry and cache period. `0` disables it.',
    default: '600',
    parse: int(0, 100_000_000),
  },
  AUTH_FAILURE_LIMIT: {
    doc: 'Failed authentications (401) one client address may cause per rate-limit window before its requests without a valid key get 429 (a valid key from the same address is still served); shared by all replicas; `0` disables it.',
    default: '20',
    parse: int(0, 100_000_000),
  },
  RATE_LIMIT_SYNC_MS: { doc: 'How often each replica adds its local rate-limit counts to the shared counters in the database and reads the totals back.', default: '150', parse: int(10, 10_000) },
  CHANGE_RETENTION_HOURS: { doc: 'How long deletes stay in the change feed (tombstones); a `since` older than the oldest kept delete is a 410 and the consumer lists again.', default: '168', parse: int(1, 24 * 3650) },
  FEED_POLL_MS: { doc: 'How often each replica reads the change log for other replicas\' writes (its own writes are read at once).', default: '100', parse: int(10, 10_000) },
  FEED_HOLE_FILL_MS: { doc: 'A revision still missing after this long while later ones exist (its writer died) is filled with a no-op, so the feed moves on; the late writer retries at another revision.', default: '2000', parse: int(100, 600_000) },
  FEED_COMPACT_AFTER_S: { doc: 'Change-log records superseded by a later change of the same entry are removed once older than this.', default: '600', parse: int(10, 86_400) },
  FEED_BOOKMARK_S: { doc: 'Seconds between bookmark events (heartbeats carrying the current revision) on change-feed streams.', default: '15', parse: int(1, 300) },
  FEED_STREAM_BUDGET_BYTES: {
    doc: 'Most bytes written to change-feed streams (SSE) and not yet sent to their clients, all streams of the process together. Over it, the streams holding more than their share (this / open streams) are ended; one stream alone is ended above 4 MiB (or this, if less). Clients resume with `Last-Event-ID`.',
    default: '67108864',
    parse: int(65_536, 1024 * 1024 * 1024),
  },
  QUERY_SOURCE: { doc: '`view`: queries are answered from the in-memory view fed by the change feed (the database while it loads); `database`: always from the database.', default: 'view', parse: oneOf('view', 'database') },
  PEERS: {
    doc: 'Peer catalogs to follow (SPEC 15): comma-separated `name=URL` pairs (name: lowercase letters, digits, dashes). Each peer\'s local entries are mirrored here read-only, with ids `<name>:<peer id>`. Peer URLs obey `PROBE_ALLOWED_NETWORKS`/`PROBE_DENIED_NETWORKS`.',
    default: '',
    parse: peers,
  },
  PEER_KEYS: {
    doc: 'Reader API keys of the peers, comma-separated `name=KEY` pairs (sent as `Authorization: Bearer KEY`; redacted from logs). A peer without a key is called without one (it must be in protected mode and reachable on loopback, or open).',
    default: '',
    parse: noPlaceholder(peerKeys),
  },
  PEER_STALE_AFTER_S: { doc: 'A peer not reached for this long has its mirrored entries marked `container_registry_origin.stale: true` (kept, not deleted) until it answers again.', default: '60', parse: int(1, 86_400) },
  WEBHOOK_TIMEOUT_MS: { doc: 'Time limit of one webhook delivery (connect, answer); longer counts as a failed attempt.', default: '5000', parse: int(100, 120_000) },
  WEBHOOK_RETRY_MIN_MS: { doc: 'First retry delay of a failed webhook delivery; doubled per attempt, with jitter (between half and all of it).', default: '1000', parse: int(10, 3_600_000) },
  WEBHOOK_RETRY_MAX_MS: { doc: 'Longest retry delay of a webhook delivery.', default: '600000', parse: int(10, 86_400_000) },
  WEBHOOK_RETRY_FOR_S: { doc: 'A subscription whose event has failed for this long is marked `failing` and stops (`POST /webhooks/:id/enable` resumes it).', default: '86400', parse: int(1, 30 * 86_400) },
  WEBHOOK_CONCURRENCY: { doc: 'Webhook deliveries in flight at once on one replica, across subscriptions (each subscription has at most one).', default: '16', parse: int(1, 1024) },
  WEBHOOK_LEASE_MS: { doc: 'Length of the lease through which one replica at a time delivers a subscription (renewed while delivering; a dead holder is replaced within two leases).', default: '15000', parse: int(500, 600_000) },
  RESOLVE_MAX_ANSWER_BYTES: {
    doc: 'Largest `POST /resolve` answer; a batch whose answer would be larger is refused with 413 (naming how many images fit). Each image gives at most 20 candidates (`truncated: true` when more serve it).',
    default: '8388608',
    parse: int(65_536, 256 * 1024 * 1024),
  },
  METRICS_MAX_REGISTRIES: { doc: 'Most registries given per-registry series in /metrics (`registry_db_registry_*`); the rest are left out (and counted in `registry_db_registry_series_dropped`).', default: '5000', parse: int(0, 1_000_000) },
  SHUTDOWN_TIMEOUT_MS: { doc: 'On SIGTERM/SIGINT, how long requests in flight may take to finish before the process exits with status 1.', default: '25000', parse: int(100, 600_000) },
} satisfies Record<string, Spec<unknown>>;

type SpecMap = typeof configSpec;
export type Config = Readonly<{ [K in keyof SpecMap]: ReturnType<SpecMap[K]['parse']> }>;

export function loadConfig(env: Env = process.env): Config {
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(configSpec) as Array<[string, Spec<unknown>]>) {
    const raw = env[name];
    out[name] = spec.parse(raw === undefined ? (spec.defaultFrom?.(env) ?? spec.default) : raw, name);
  }
  // Replicas on a shared database must share the key that seals the credentials they store.
  if (out.MONGODB_URI !== undefined && out.CREDENTIALS_KEY === undefined) {
    throw new ConfigError('CREDENTIALS_KEY', 'is required when MONGODB_URI is set (every replica must seal credentials with the same key); generate one with `openssl rand -base64 32`');
  }
  const peerNames = new Set((out.PEERS as Peer[]).map((p) => p.name));
  for (const k of (out.PEER_KEYS as Map<string, string>).keys()) {
    if (!peerNames.has(k)) throw new ConfigError('PEER_KEYS', `names ${k}, which is not in PEERS`);
  }
  const config = out as Config;
  if (config.HTTP_REQUEST_TIMEOUT_MS < config.HTTP_HEADERS_TIMEOUT_MS) {
    throw new ConfigError('HTTP_REQUEST_TIMEOUT_MS', `must be at least HTTP_HEADERS_TIMEOUT_MS (${config.HTTP_HEADERS_TIMEOUT_MS}), got ${config.HTTP_REQUEST_TIMEOUT_MS}`);
  }
  if (config.HTTP_BODY_TIMEOUT_MS > config.HTTP_REQUEST_TIMEOUT_MS) {
    throw new ConfigError('HTTP_BODY_TIMEOUT_MS', `must be at most HTTP_REQUEST_TIMEOUT_MS (${config.HTTP_REQUEST_TIMEOUT_MS}), got ${config.HTTP_BODY_TIMEOUT_MS}`);
  }
  return Object.freeze(config);
}

/** Markdown table of the variables, for the README. */
export function configTable(): string {
  const rows = Object.entries(configSpec).map(
    ([name, spec]) => `| \`${name}\` | ${spec.default === '' ? '(unset)' : `\`${spec.default}\``} | ${spec.doc} |`,
  );
  return ['| variable | default | meaning |', '|---|---|---|', ...rows].join('\n');
}
