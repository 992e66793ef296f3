/**
 * Prometheus metrics (GET /metrics). One registry per process, like the process metrics it carries; any
 * module may record into it:
 *
 *   recordProbe(status, error)   after every probe (on demand or scheduled)
 *   recordSweep(kind, seconds)   after every sweep ('health' | 'storage')
 *   recordStreamEnded(reason)    when a change-feed stream is ended for holding too much unsent output
 *   recordStreamsUnsent(bytes)   the unsent bytes of all change-feed streams, when summed
 *   recordPullCredentials(outcome, disclosed)   after every answer of POST /pull-credentials
 *   recordWriteBatch(step, size) after every grouped write of entry changes ('log' | 'collection')
 *
 * HTTP requests are counted and timed by `httpMetrics()` by route template (never the raw path, so ids do
 * not explode the label space) and status.
 */
import type { RequestHandler } from 'express';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry });

const httpRequests = new Counter({
  name: 'registry_db_http_requests_total',
  help: 'HTTP requests answered, by method, route template and status.',
  labelNames: ['method', 'route', 'status'] as const,
  registers: [registry],
});

const httpDuration = new Histogram({
  name: 'registry_db_http_request_duration_seconds',
  help: 'HTTP request latency, by method, route template and status.',
  labelNames: ['method', 'route', 'status'] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

const probes = new Counter({
  name: 'registry_db_probes_total',
  help: 'Registry health probes, by resulting status and error code (`none` when healthy).',
  labelNames: ['status', 'error'] as const,
  registers: [registry],
});

const sweepDuration = new Histogram({
  name: 'registry_db_sweep_duration_seconds',
  help: 'Duration of scheduled sweeps, by kind (health, storage).',
  labelNames: ['kind'] as const,
  buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
  registers: [registry],
});

const streamsEnded = new Counter({
  name: 'registry_db_feed_streams_ended_total',
  help: 'Change-feed streams (SSE) ended because their client did not read: `budget` (all streams over FEED_STREAM_BUDGET_BYTES, this one over its share) or `stream_limit` (this one alone over its limit).',
  labelNames: ['reason'] as const,
  registers: [registry],
});

const streamsUnsent = new Gauge({
  name: 'registry_db_feed_streams_unsent_bytes',
  help: 'Bytes written to change-feed streams (SSE) and not yet sent, all streams together, when last summed (at most 5 s before a batch of changes, and whenever the streams could be over their budget).',
  registers: [registry],
});

export function recordStreamEnded(reason: 'budget' | 'stream_limit'): void {
  streamsEnded.inc({ reason });
}

export function recordStreamsUnsent(bytes: number): void {
  streamsUnsent.set(bytes);
}

const pullCredentials = new Counter({
  name: 'registry_db_pull_credentials_requests_total',
  help: 'Answers of POST /pull-credentials, by outcome: `disclosed` (credentials sent), `none` (no candidate has credentials), `not_found` (no registry serves the image).',
  labelNames: ['outcome'] as const,
  registers: [registry],
});

const pullCredentialsDisclosed = new Counter({
  name: 'registry_db_pull_credentials_disclosed_total',
  help: 'Registry credentials sent by POST /pull-credentials (one per registry per answer).',
  registers: [registry],
});

export function recordPullCredentials(outcome: 'disclosed' | 'none' | 'not_found', disclosed = 0): void {
  pullCredentials.inc({ outcome });
  if (disclosed > 0) pullCredentialsDisclosed.inc(disclosed);
}

export function recordProbe(status: string, error?: string | null): void {
  probes.inc({ status, error: error ?? 'none' });
}

const writeBatches = new Histogram({
  name: 'registry_db_write_batch_size',
  help: 'Entry changes written together (group commit): per append to the change log (`log`) and per bulk write of the registries collection (`collection`).',
  labelNames: ['step'] as const,
  buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
  registers: [registry],
});

export function recordWriteBatch(step: 'log' | 'collection', size: number): void {
  writeBatches.observe({ step }, size);
}

export function recordSweep(kind: string, seconds: number): void {
  sweepDuration.observe({ kind }, seconds);
}

/** The route template of a request that matched a route, else `unmatched`. */
export function routeTemplate(req: { baseUrl?: string; route?: { path?: unknown } }): string {
  const p = req.route?.path;
  return typeof p === 'string' ? `${req.baseUrl ?? ''}${p}` : 'unmatched';
}

export function httpMetrics(): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const labels = { method: req.method, route: routeTemplate(req), status: String(res.statusCode) };
      httpRequests.inc(labels);
      httpDuration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
    });
    next();
  };
}

export async function metricsText(): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}
