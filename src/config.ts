/**
 * Configuration: every environment variable the service reads, parsed once at startup into one typed,
 * frozen object. Nothing else reads process.env. An invalid value throws a ConfigError naming the variable.
 * `npm run config:doc` prints the README table from the `doc` fields below.
 */
import { isIP } from 'node:net';
import path from 'node:path';

export class ConfigError extends Error {
  constructor(readonly variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

interface Spec<T> {
  doc: string;
  default: string;
  parse: (raw: string, name: string) => T;
}

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

export const ROLES = ['reader', 'writer', 'admin'] as const;
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
/** A CIDR list (`10.0.0.0/8,::1/128`); a bare address means the single host. */
const cidrs = (raw: string, name: string): string[] =>
  list(raw).map((entry) => {
    const [address = '', prefix, extra] = entry.split('/');
    const family = isIP(address);
    const bits = prefix === undefined ? (family === 6 ? 128 : 32) : Number(prefix);
    if (family === 0 || extra !== undefined || !/^\d{1,3}$/.test(String(bits)) || bits > (family === 6 ? 128 : 32)) {
      throw new ConfigError(name, `"${entry}" is not a CIDR range (expected e.g. 10.0.0.0/8 or fd00::/8)`);
    }
    return `${address}/${bits}`;
  });

/** The variables, their defaults and their meaning. Order is the README's order. */
export const configSpec = {
  PORT: { doc: 'TCP port of the HTTP API.', default: '8080', parse: int(0, 65535) },
  HOST: { doc: 'Address the HTTP API listens on.', default: '0.0.0.0', parse: str },
  HTTP_MAX_CONNECTIONS: {
    doc: 'Most open client connections per process (more are dropped at once); keep it well under the file descriptor limit. Connections that have not sent a whole request yet hold at most half of them (a newer one closes the oldest).',
    default: '1024',
    parse: int(16, 1_000_000),
  },
  HTTP_CONNECTION_IDLE_TIMEOUT_MS: { doc: 'A new connection that has not sent a whole request head this long after it opened is closed (also one that never sends a byte).', default: '10000', parse: int(100, 600_000) },
  HTTP_HEADERS_TIMEOUT_MS: { doc: 'Node `server.headersTimeout`: time to receive a request head, from its first byte (checked every second).', default: '10000', parse: int(100, 600_000) },
  HTTP_REQUEST_TIMEOUT_MS: { doc: 'Node `server.requestTimeout`: time to receive a whole request, body included (408 after it); at least HTTP_HEADERS_TIMEOUT_MS.', default: '30000', parse: int(100, 3_600_000) },
  HTTP_KEEP_ALIVE_TIMEOUT_MS: { doc: 'Node `server.keepAliveTimeout`: how long an idle keep-alive connection stays open after a response (set it above a load balancer\'s idle timeout).', default: '5000', parse: int(100, 600_000) },
  MONGODB_URI: {
    doc: 'MongoDB connection string (MongoDB 5+, replica set or Atlas). Unset: the embedded default database (mongod via mongodb-memory-server, else FerretDB).',
    default: '',
    parse: optional,
  },
  MONGODB_DB: { doc: 'Database name.', default: 'registry_db', parse: str },
  DATA_DIR: { doc: 'Where the embedded database and the generated credentials key live.', default: './data', parse: (raw: string) => path.resolve(raw) },
  EMBEDDED_DB: {
    doc: 'Embedded backend when MONGODB_URI is unset: `auto` (mongod if one can be had, else FerretDB), `mongod` or `ferretdb`.',
    default: 'auto',
    parse: oneOf('auto', 'mongod', 'ferretdb'),
  },
  LOG_LEVEL: { doc: 'winston log level.', default: 'info', parse: oneOf('error', 'warn', 'info', 'http', 'debug') },
  BODY_LIMIT_BYTES: { doc: 'Largest accepted request body (413 above).', default: '262144', parse: int(1024, 16 * 1024 * 1024) },
  QUERY_TIMEOUT_MS: { doc: 'Server-side time limit (maxTimeMS) of every database query.', default: '5000', parse: int(100, 600000) },
  CREDENTIALS_KEY: {
    doc: 'Base64 of 32 bytes: AES-256-GCM key for stored registry credentials. Unset: a key generated once into DATA_DIR/credentials.key (give every replica the same key).',
    default: '',
    parse: (raw: string, name: string): Buffer | undefined => {
      if (raw === '') return undefined;
      const key = Buffer.from(raw, 'base64');
      if (key.length !== 32) throw new ConfigError(name, `must be base64 of exactly 32 bytes, got ${key.length} bytes`);
      return key;
    },
  },
  PROBE_ALLOWED_NETWORKS: {
    doc: 'CIDR list probes may reach (checked on the resolved address).',
    default: '10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,127.0.0.0/8,fc00::/7,::1/128,0.0.0.0/0,::/0',
    parse: cidrs,
  },
  PROBE_DENIED_NETWORKS: {
    doc: 'CIDR list probes never reach; wins over the allowed list.',
    default: '169.254.0.0/16,fe80::/10,224.0.0.0/4,ff00::/8,0.0.0.0/8',
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
  STORAGE_TIMEOUT_MS: { doc: 'Storage refresh: time limit per registry (hit: `truncated`).', default: '600000', parse: int(1000, 86_400_000) },
  STORAGE_CONCURRENCY: { doc: 'Storage refresh: registry API requests in flight per registry.', default: '4', parse: int(1, 64) },
  HEALTH_CRON: { doc: 'Cron schedule of health sweeps, or `off`.', default: '*/5 * * * *', parse: str },
  STORAGE_CRON: { doc: 'Cron schedule of storage refreshes, or `off`.', default: '0 * * * *', parse: str },
  HEALTH_HISTORY_DAYS: { doc: 'Days of probe history kept.', default: '7', parse: int(1, 3650) },
  API_KEYS: {
    doc: 'Comma-separated `role:key` pairs (roles `admin`, `writer`, `reader`; keys of at least 16 characters, no spaces, commas or colons), sent as `Authorization: Bearer KEY` or `Authorization: Simple KEY`. Unset: protected mode (loopback clients only).',
    default: '',
    parse: apiKeys,
  },
  TRUST_PROXY: {
    doc: 'Express `trust proxy`: `true` behind a reverse proxy or ingress (client addresses, used by the rate limits in protected mode, come from `X-Forwarded-For`), else `false`. Protected mode always checks the socket peer and every forwarded address.',
    default: 'false',
    parse: bool,
  },
  RATE_LIMIT_WINDOW_MS: { doc: 'Length of one rate-limit window (fixed windows, shared by all replicas through the database).', default: '60000', parse: int(1000, 86_400_000) },
  RATE_LIMIT_MAX: { doc: 'Requests one client (API key, or address in protected mode) may make per window on all routes together; `0` disables the limit.', default: '1000', parse: int(0, 100_000_000) },
  PROBE_RATE_LIMIT_MAX: { doc: 'Tighter budget per client and window for `GET /check_container_health/:id` (each call sends traffic to a registry); `0` disables it.', default: '30', parse: int(0, 100_000_000) },
  RATE_LIMIT_SYNC_MS: { doc: 'How often each replica adds its local rate-limit counts to the shared counters in the database and reads the totals back.', default: '150', parse: int(10, 10_000) },
  SHUTDOWN_TIMEOUT_MS: { doc: 'On SIGTERM/SIGINT, how long requests in flight may take to finish before the process exits with status 1.', default: '25000', parse: int(100, 600_000) },
} satisfies Record<string, Spec<unknown>>;

type SpecMap = typeof configSpec;
export type Config = Readonly<{ [K in keyof SpecMap]: ReturnType<SpecMap[K]['parse']> }>;

export function loadConfig(env: Env = process.env): Config {
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(configSpec) as Array<[string, Spec<unknown>]>) {
    const raw = env[name];
    out[name] = spec.parse(raw === undefined ? spec.default : raw, name);
  }
  const config = out as Config;
  if (config.HTTP_REQUEST_TIMEOUT_MS < config.HTTP_HEADERS_TIMEOUT_MS) {
    throw new ConfigError('HTTP_REQUEST_TIMEOUT_MS', `must be at least HTTP_HEADERS_TIMEOUT_MS (${config.HTTP_HEADERS_TIMEOUT_MS}), got ${config.HTTP_REQUEST_TIMEOUT_MS}`);
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
