/**
 * Per-registry series in /metrics, kube-state-metrics style (kube_pod_status_phase): computed at scrape
 * time from the catalog view (src/view/catalog-view.ts), not from the probes this replica happened to run,
 * so every replica reports the same values, and a deleted entry's series are gone at the next scrape.
 *
 *   registry_db_registry_status{registry_id, registry_name, status}  1 for the current status, 0 for the others
 *   registry_db_registry_probe_latency_seconds{registry_id, registry_name}    of the last probe
 *   registry_db_registry_last_success_timestamp_seconds{registry_id, registry_name}  last healthy probe
 *   registry_db_mirror_drift_tags{registry_id, registry_name}  a mirror's tags whose digest differs from the
 *                                                              registry it mirrors (SPEC 19; 0 without drift)
 *
 * At most `max` registries (lowest ids first, the same on every replica); the rest are counted in
 * registry_db_registry_series_dropped. A malformed stored entry (src/registries/stored-shape.ts) is left
 * out (and logged once by `bad`) rather than failing the scrape.
 */
import type { StoredRegistry } from '../registries/model';
import type { BadEntries } from '../registries/stored-shape';
import type { CatalogView } from '../view/catalog-view';

const STATUSES = ['healthy', 'degraded', 'unhealthy', 'unknown'] as const;

const escape = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

export function registryMetricsText(view: CatalogView, max: number, bad: BadEntries): string {
  const docs: StoredRegistry[] = [];
  for (const item of view.entries()) if (bad.ok(item.doc, 'metrics')) docs.push(item.doc as StoredRegistry);
  docs.sort((a, b) => (a._id < b._id ? -1 : a._id > b._id ? 1 : 0));
  const kept = docs.slice(0, max);
  const status: string[] = [];
  const latency: string[] = [];
  const success: string[] = [];
  const drift: string[] = [];
  for (const doc of kept) {
    const labels = `registry_id="${escape(doc._id)}",registry_name="${escape(doc.container_registry_name)}"`;
    const h = doc.container_registry_health;
    const current = h?.status ?? 'unknown';
    for (const s of STATUSES) status.push(`registry_db_registry_status{${labels},status="${s}"} ${s === current ? 1 : 0}`);
    if (typeof h?.latency_ms === 'number') latency.push(`registry_db_registry_probe_latency_seconds{${labels}} ${h.latency_ms / 1000}`);
    const ok = typeof h?.last_healthy_at === 'string' ? Date.parse(h.last_healthy_at) : NaN;
    if (!Number.isNaN(ok)) success.push(`registry_db_registry_last_success_timestamp_seconds{${labels}} ${ok / 1000}`);
    const mirrors = (doc.container_registry_config as { mirror_of?: unknown } | undefined)?.mirror_of;
    const drifting = doc.container_registry_storage_info?.observed?.mirror_drift?.tags;
    if ((Array.isArray(mirrors) && mirrors.length > 0) || drifting !== undefined) drift.push(`registry_db_mirror_drift_tags{${labels}} ${drifting ?? 0}`);
  }
  return [
    '# HELP registry_db_registry_status Health status of each registry in the catalog (1 for the current status).',
    '# TYPE registry_db_registry_status gauge',
    ...status,
    '# HELP registry_db_registry_probe_latency_seconds Latency of the last health probe of each registry.',
    '# TYPE registry_db_registry_probe_latency_seconds gauge',
    ...latency,
    '# HELP registry_db_registry_last_success_timestamp_seconds When each registry was last probed healthy (Unix time).',
    '# TYPE registry_db_registry_last_success_timestamp_seconds gauge',
    ...success,
    '# HELP registry_db_mirror_drift_tags Tags of each mirror whose digest differs from the same tag on the registry it mirrors.',
    '# TYPE registry_db_mirror_drift_tags gauge',
    ...drift,
    '# HELP registry_db_registry_series_dropped Registries left out of the per-registry series (METRICS_MAX_REGISTRIES).',
    '# TYPE registry_db_registry_series_dropped gauge',
    `registry_db_registry_series_dropped ${docs.length - kept.length}`,
    '',
  ].join('\n');
}
