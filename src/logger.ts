/**
 * winston logger: JSON lines on stdout. The `redact` format runs on every line, whoever logs it, so
 * credentials, Authorization values and API keys never reach the output.
 */
import winston from 'winston';

const SECRET_KEY = /pass(word)?|secret|token|authorization|api[-_]?keys?|credential|cookie|private[-_]?key/i;
const AUTH_VALUE = /\b(Bearer|Basic|Simple)\s+[A-Za-z0-9._~+/=-]+/g;
const URL_USERINFO = /(\b[a-z][a-z0-9+.-]*:\/\/)[^\s/@]*@/gi;
/** `password=x`, `token: x`, `"api_key":"x"` inside free text (error messages, URLs' query strings). */
const INLINE_SECRET = /\b((?:pass(?:word)?|passwd|secret|token|access_token|api[-_]?keys?|client_secret)["']?\s*[:=]\s*["']?)([^\s"'&,;}]+)/gi;
/** The documentation placeholder of the startup hint (`set API_KEYS=role:key,...`): no secret, kept readable. */
const PLACEHOLDER = /^role:key$/i;
/** Standard Webhooks secrets (webhook subscriptions), wherever they appear. */
const WEBHOOK_SECRET = /whsec_[A-Za-z0-9+/=]+/g;
const REDACTED = '[REDACTED]';

/** SECRET_KEY's answer per key name: log lines repeat a few dozen names (bounded, in case of odd keys). */
const secretKeyMemo = new Map<string, boolean>();
function isSecretKey(key: string): boolean {
  let hit = secretKeyMemo.get(key);
  if (hit === undefined) {
    hit = SECRET_KEY.test(key);
    if (secretKeyMemo.size < 1000) secretKeyMemo.set(key, hit);
  }
  return hit;
}

/** Extra literal strings (API keys) to scrub wherever they appear. */
const knownSecrets = new Set<string>();
export function registerSecret(secret: string): void {
  if (secret.length >= 4) knownSecrets.add(secret);
}

/** Every pattern above needs one of these; most log strings (ids, routes, paths, statuses) have none. */
const MAYBE_PATTERN = /Bearer|Basic|Simple|:\/\/|[:=]|whsec_/i;

function inlineSecret(match: string, prefix: string, value: string): string {
  return PLACEHOLDER.test(value) ? match : `${prefix}${REDACTED}`;
}

function scrubString(s: string): string {
  if (s.length < 4) return s;
  let out = MAYBE_PATTERN.test(s) ? s.replace(AUTH_VALUE, `$1 ${REDACTED}`).replace(URL_USERINFO, `$1${REDACTED}@`).replace(INLINE_SECRET, inlineSecret).replace(WEBHOOK_SECRET, REDACTED) : s;
  for (const secret of knownSecrets) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  return out;
}

export function redactValue(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value === 'string') return scrubString(value);
  if (typeof value === 'bigint') return value.toString();
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (depth > 8 || seen.has(value)) return '[…]';
  seen.add(value);
  if (value instanceof Error) {
    return { name: value.name, message: scrubString(value.message), stack: value.stack ? scrubString(value.stack) : undefined };
  }
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1, seen));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    // Flags such as password_set or auth_required stay readable; values under secret-looking keys do not.
    out[k] = isSecretKey(k) && typeof v !== 'boolean' && typeof v !== 'number' ? REDACTED : redactValue(v, depth + 1, seen);
  }
  return out;
}

const MESSAGE = Symbol.for('message');

/**
 * Timestamp, redaction and JSON in one pass (winston's `timestamp`, a `redact` and `json` formats did three,
 * and `json` sorts every line's keys): about a third of the service's own CPU per request in the read
 * benchmark went to the access log line. Keys keep their order, timestamp, level and message first.
 */
const jsonLine = winston.format((info) => {
  const fields = info as Record<string, unknown>;
  const line: Record<string, unknown> = { timestamp: new Date().toISOString(), level: info.level, message: redactValue(info.message) };
  for (const key of Object.keys(fields)) {
    if (key === 'level' || key === 'message') continue;
    const v = fields[key];
    line[key] = isSecretKey(key) && typeof v !== 'boolean' ? REDACTED : redactValue(v);
  }
  (info as unknown as Record<symbol, string>)[MESSAGE] = JSON.stringify(line);
  return info;
});

export type Logger = winston.Logger;

export function createLogger(level: string, stream: NodeJS.WritableStream = process.stdout): Logger {
  return winston.createLogger({
    level,
    format: jsonLine(),
    defaultMeta: { service: 'registry-db' },
    transports: [new winston.transports.Stream({ stream })],
  });
}
