/**
 * winston logger: JSON lines on stdout. The `redact` format runs on every line, whoever logs it, so
 * credentials, Authorization values and API keys never reach the output.
 */
import winston from 'winston';

const SECRET_KEY = /pass(word)?|secret|token|authorization|api[-_]?keys?|credential|cookie|private[-_]?key/i;
const AUTH_VALUE = /\b(Bearer|Basic|Simple)\s+[A-Za-z0-9._~+/=-]+/g;
const URL_USERINFO = /(\b[a-z][a-z0-9+.-]*:\/\/)[^\s/@]*@/gi;
/** `password=x`, `token: x`, `"api_key":"x"` inside free text (error messages, URLs' query strings). */
const INLINE_SECRET = /\b((?:pass(?:word)?|passwd|secret|token|access_token|api[-_]?keys?|client_secret)["']?\s*[:=]\s*["']?)[^\s"'&,;}]+/gi;
const REDACTED = '[REDACTED]';

/** Extra literal strings (API keys) to scrub wherever they appear. */
const knownSecrets = new Set<string>();
export function registerSecret(secret: string): void {
  if (secret.length >= 4) knownSecrets.add(secret);
}

function scrubString(s: string): string {
  let out = s.replace(AUTH_VALUE, `$1 ${REDACTED}`).replace(URL_USERINFO, `$1${REDACTED}@`).replace(INLINE_SECRET, `$1${REDACTED}`);
  for (const secret of knownSecrets) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  return out;
}

export function redactValue(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value === 'string') return scrubString(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth > 8 || seen.has(value)) return '[…]';
  seen.add(value);
  if (value instanceof Error) {
    return { name: value.name, message: scrubString(value.message), stack: value.stack ? scrubString(value.stack) : undefined };
  }
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1, seen));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    // Flags such as password_set or auth_required stay readable; values under secret-looking keys do not.
    out[k] = SECRET_KEY.test(k) && typeof v !== 'boolean' && typeof v !== 'number' ? REDACTED : redactValue(v, depth + 1, seen);
  }
  return out;
}

const redact = winston.format((info) => {
  for (const key of Object.keys(info)) {
    if (key === 'level') continue;
    const v = (info as Record<string, unknown>)[key];
    (info as Record<string, unknown>)[key] = SECRET_KEY.test(key) && typeof v !== 'boolean' ? REDACTED : redactValue(v);
  }
  return info;
});

export type Logger = winston.Logger;

export function createLogger(level: string, stream: NodeJS.WritableStream = process.stdout): Logger {
  return winston.createLogger({
    level,
    format: winston.format.combine(winston.format.timestamp(), redact(), winston.format.json()),
    defaultMeta: { service: 'registry-db' },
    transports: [new winston.transports.Stream({ stream })],
  });
}
