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
export type StorageCrawler = (target: ProbeTarget, signal?: AbortSignal) => Promise<ContainerRegistryObserved>;
