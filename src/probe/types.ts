/**
 * Contract between the registry protocol client (src/probe/) and the health service (src/health/):
 * one probe function serves both GET /check_container_health/:id and the scheduled sweeps.
 */
import type { ContainerRegistryObserved } from '../generated';

/** Everything a probe needs about one registry (credentials already decrypted, never logged). */
export interface ProbeTarget {
  id: string;
  url: string;
  credentials?: { username: string; password: string };
  insecureSkipTlsVerify?: boolean;
  /** PEM CA bundle trusted for this registry (container_registry_config.ca_certificate). */
  caCertificate?: string;
}

export type ProbeStatus = 'healthy' | 'degraded' | 'unhealthy';

/** What one probe observed. The health writer adds consecutive_failures, last_healthy_at, last_status_change_at. */
export interface ProbeResult {
  status: ProbeStatus;
  checked_at: string;
  latency_ms: number;
  http_status: number | null;
  api_version: string | null;
  auth_required: boolean;
  auth: { required: boolean; scheme: string | null; realm: string | null; service: string | null } | null;
  tls: { protocol: string | null; cipher: string | null; cert_subject: string | null; cert_issuer: string | null; cert_expires_at: string | null } | null;
  /** Machine-readable code (see schemas/container_registry_health.schema.json), null when healthy. */
  error: string | null;
  detail: string | null;
  /** rate_limited only: the time the registry's Retry-After names (sweeps do not probe it before then). */
  retry_after?: string | null;
}

export type Prober = (target: ProbeTarget, signal?: AbortSignal) => Promise<ProbeResult>;

/** One tag the storage crawl saw (SPEC 19): its manifest's digest, media type and, for an index, its platforms. */
export interface InventoryRow {
  repository: string;
  tag: string;
  /** null when the manifest could not be read (a crawl bound was hit first, or the registry refused it). */
  digest: string | null;
  media_type: string | null;
  /** `os/architecture[/variant]` of an index's children; null for an image manifest (or an unread one). */
  platforms: string[] | null;
}

/**
 * Where a crawl hands the tags it saw: in (repository, tag) order, a batch at a time, each call awaited
 * (the crawl waits for the sink: rows are never held in memory beyond a bounded buffer). A sink that throws
 * gets no more rows; the crawl itself goes on counting.
 */
export interface InventorySink {
  add(rows: InventoryRow[]): Promise<void>;
}

export type StorageCrawler = (target: ProbeTarget, signal?: AbortSignal, sink?: InventorySink) => Promise<ContainerRegistryObserved>;
