/**
 * The machine-readable failure codes of a probe (schemas/container_registry_health.schema.json) and the
 * one place where a thrown error becomes a code and a human detail.
 */
import type { ContainerRegistryHealth } from '../generated';

export type ProbeErrorCode = NonNullable<ContainerRegistryHealth['error']>;

/** A failure the probe code raises on purpose, already classified. */
export class ProbeError extends Error {
  constructor(readonly code: ProbeErrorCode, detail: string) {
    super(detail);
    this.name = 'ProbeError';
  }
}

/** A Map: the code comes from the error (a name such as `constructor` must not hit Object.prototype). */
const BY_SYSTEM_CODE: ReadonlyMap<string, ProbeErrorCode> = new Map(Object.entries({
  ECONNREFUSED: 'connection_refused',
  ECONNRESET: 'connection_reset',
  EPIPE: 'connection_reset',
  UND_ERR_SOCKET: 'connection_reset',
  UND_ERR_CLOSED: 'connection_reset',
  ENOTFOUND: 'dns_failure',
  EAI_AGAIN: 'dns_failure',
  EAI_FAIL: 'dns_failure',
  EAI_NONAME: 'dns_failure',
  ENODATA: 'dns_failure',
  ETIMEDOUT: 'timeout',
  UND_ERR_CONNECT_TIMEOUT: 'timeout',
  UND_ERR_HEADERS_TIMEOUT: 'timeout',
  UND_ERR_BODY_TIMEOUT: 'timeout',
  EHOSTUNREACH: 'connection_refused',
  ENETUNREACH: 'connection_refused',
  EPROTO: 'tls_error',
  ERR_INVALID_URL: 'invalid_url',
} satisfies Record<string, ProbeErrorCode>));

const TLS_CODE = /^(ERR_TLS_|ERR_SSL_)|CERT|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|HOSTNAME_MISMATCH/;

interface Classified {
  code: ProbeErrorCode;
  detail: string;
}

/** Every error a probe can meet, nested causes and AggregateErrors included, as a code and a detail. */
export function classifyError(err: unknown, deadline: { timedOut(): boolean }): Classified {
  if (deadline.timedOut()) return { code: 'timeout', detail: `no answer within the probe time limit (${describe(err)})` };
  for (const e of chain(err)) {
    if (e instanceof ProbeError) return { code: e.code, detail: e.message };
    const code = typeof e.code === 'string' ? e.code : '';
    const mapped = BY_SYSTEM_CODE.get(code);
    if (mapped) return { code: mapped, detail: describe(e) };
    if (code && TLS_CODE.test(code)) return { code: 'tls_error', detail: describe(e) };
    if (/ssl|tls|certificate/i.test(e.message ?? '') && !code.startsWith('UND_ERR')) return { code: 'tls_error', detail: describe(e) };
  }
  const first = chain(err).next().value;
  if (first && (first.name === 'AbortError' || first.code === 'UND_ERR_ABORTED' || first.code === 'ABORT_ERR')) {
    return { code: 'probe_error', detail: 'probe cancelled' };
  }
  return { code: 'probe_error', detail: describe(err) };
}

interface ErrorLike {
  name?: string;
  code?: unknown;
  message?: string;
  cause?: unknown;
  errors?: unknown;
}

function* chain(err: unknown, depth = 0): Generator<ErrorLike> {
  if (depth > 5 || err === null || typeof err !== 'object') return;
  const e = err as ErrorLike;
  yield e;
  if (Array.isArray(e.errors)) for (const inner of e.errors) yield* chain(inner, depth + 1);
  if (e.cause !== undefined) yield* chain(e.cause, depth + 1);
}

function describe(err: unknown): string {
  if (err === null || typeof err !== 'object') return String(err);
  const e = err as ErrorLike;
  const code = typeof e.code === 'string' ? `${e.code}: ` : '';
  let text = `${code}${e.message || e.name || 'error'}`;
  const inner = Array.isArray(e.errors) ? e.errors[0] : e.cause;
  if (inner && typeof inner === 'object' && !text.includes((inner as ErrorLike).message ?? '\u0000')) text += ` (${describe(inner)})`;
  return text.length > 500 ? `${text.slice(0, 497)}...` : text;
}
