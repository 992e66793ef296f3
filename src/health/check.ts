/**
 * The one probe step shared by GET /check_container_health/:id and the sweeps: stored entry → target →
 * prober → result writer (the storage refresh's step is refresh.ts). A probe that throws (or credentials that cannot be opened) is stored as an
 * unhealthy `probe_error`: the stored status always reflects the latest attempt.
 */
import { recordProbe } from '../observability/metrics';
import type { Prober, ProbeResult } from '../probe/types';
import type { CredentialCipher } from '../registries/credentials';
import type { StoredRegistry } from '../registries/model';
import { clipToSchema, schemas } from '../schemas';
import type { Lease } from './leases';
import { toProbeTarget } from './target';
import type { HealthWrite, ResultWriter } from './writer';

export interface CheckerDeps {
  prober: Prober;
  cipher: CredentialCipher;
  writer: ResultWriter;
  /** Hard ceiling on one probe, a safety net above the prober's own total timeout. */
  probeDeadlineMs: number;
}

export function message(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).slice(0, 512);
}

/**
 * Runs `work` with an abort signal that fires after `ms`, and stops waiting for it then even if it ignores
 * the signal: one hanging registry costs at most its own deadline.
 */
export async function withDeadline<T>(ms: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const signal = AbortSignal.timeout(ms);
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work(signal), aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort!);
  }
}

export class HealthChecker {
  constructor(private readonly deps: CheckerDeps) {}

  /** Probes one registry now (strings cut to the health schema's bounds); never throws for a probe failure (only for database errors). */
  async probe(doc: StoredRegistry): Promise<ProbeResult> {
    const started = Date.now();
    const checkedAt = new Date(started).toISOString();
    try {
      const target = toProbeTarget(doc, this.deps.cipher);
      // Realm, service, API version, certificate names and details are the registry's text: kept within the schema's bounds.
      return clipToSchema(schemas.health, await withDeadline(this.deps.probeDeadlineMs, (signal) => this.deps.prober(target, signal)));
    } catch (e) {
      const timedOut = e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError');
      return {
        status: 'unhealthy',
        checked_at: checkedAt,
        latency_ms: Date.now() - started,
        http_status: null,
        api_version: null,
        auth_required: false,
        auth: null,
        tls: null,
        error: timedOut ? 'timeout' : 'probe_error',
        detail: timedOut ? `no answer within ${this.deps.probeDeadlineMs} ms` : `probe failed: ${message(e)}`,
      };
    }
  }

  /**
   * Probe + write. `lease` is the sweep's claim (absent for on-demand checks). `doc` was read just before
   * the call: the write starts from it (one read fewer per probe) and re-reads only if it changed.
   */
  async check(doc: StoredRegistry, lease?: Lease): Promise<{ result: ProbeResult; write: HealthWrite }> {
    const readAt = Date.now();
    const result = await this.probe(doc);
    recordProbe(result.status, result.error);
    const write = await this.deps.writer.writeHealth(doc._id, result, lease, { doc, readAt });
    return { result, write };
  }
}
