/**
 * The HTTP client every registry request goes through: undici 7 with connect and total timeouts, the egress
 * policy inside the socket's DNS lookup, per-registry TLS settings (CA, insecure_skip_tls_verify) on Agents
 * shared by every registry with the same settings, TLS details captured at handshake, bounded bodies and
 * manual redirects.
 */
import { createSecureContext, rootCertificates, TLSSocket, type SecureContext } from 'node:tls';
import { Agent, buildConnector, request } from 'undici';
import type { Config } from '../config';
import { ProbeError } from './errors';
import { createEgressPolicy, type EgressPolicy } from './egress';
import type { ProbeResult } from './types';

export type TlsInfo = NonNullable<ProbeResult['tls']>;
export type Headers = Record<string, string | string[] | undefined>;

export interface TlsSettings {
  insecureSkipTlsVerify?: boolean;
  caCertificate?: string;
}

export interface HttpRequest {
  url: URL;
  /** GET unless given (webhook deliveries POST a body through the same policy; presence checks send HEAD). */
  method?: 'GET' | 'HEAD' | 'POST';
  body?: string;
  headers: Record<string, string>;
  tls: TlsSettings;
  signal: AbortSignal;
  /** Bytes of body kept; the rest is discarded and `bodyTruncated` set. */
  maxBodyBytes: number;
  /**
   * How long the answer's headers, and each gap in its body, may take (default: the client's, PROBE_TIMEOUT_MS).
   * Longer for a request the server is asked to hold, such as a peer's long poll.
   */
  timeoutMs?: number;
}

export interface HttpResponse {
  url: URL;
  status: number;
  headers: Headers;
  body: Buffer;
  bodyTruncated: boolean;
  tls: TlsInfo | null;
}

export interface HttpClient {
  readonly egress: EgressPolicy;
  /** One request, no redirects followed. */
  send(req: HttpRequest): Promise<HttpResponse>;
  close(): Promise<void>;
}

export const MAX_REDIRECTS = 3;
export const USER_AGENT = 'registry-db-probe/0.1';
const MAX_CA_AGENTS = 256;
const MAX_TLS_ORIGINS = 4096;

interface AgentEntry {
  agent: Agent;
  /** TLS details of the last handshake per host:port. */
  tlsByOrigin: Map<string, TlsInfo>;
}

export interface HttpClientOptions {
  /** Ports of this service and of its embedded database: never reached on a local address (egress.ts). */
  localPorts?: ReadonlySet<number>;
}

export function createHttpClient(config: Config, options: HttpClientOptions = {}): HttpClient {
  const egress = createEgressPolicy(config.PROBE_ALLOWED_NETWORKS, config.PROBE_DENIED_NETWORKS, { localPorts: options.localPorts });
  // Agents shared by every registry with the same TLS settings: system roots, insecure, or one per CA bundle
  // (keyed by the PEM text itself; nothing is computed per request).
  let system: AgentEntry | null = null;
  let insecure: AgentEntry | null = null;
  const byCa = new Map<string, AgentEntry>();

  const agentFor = (tls: TlsSettings): AgentEntry => {
    if (tls.insecureSkipTlsVerify === true) return (insecure ??= newAgent(config, egress, true, undefined));
    const ca = tls.caCertificate;
    if (!ca) return (system ??= newAgent(config, egress, false, undefined));
    const found = byCa.get(ca);
    if (found) return found;
    if (byCa.size >= MAX_CA_AGENTS) {
      const [oldestCa, oldest] = byCa.entries().next().value as [string, AgentEntry];
      byCa.delete(oldestCa);
      void oldest.agent.close().catch(() => undefined);
    }
    const entry = newAgent(config, egress, false, ca);
    byCa.set(ca, entry);
    return entry;
  };

  return {
    egress,
    async send(req: HttpRequest): Promise<HttpResponse> {
      const { url } = req;
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ProbeError('invalid_url', `unsupported URL scheme ${url.protocol}`);
      egress.checkUrl(url);
      const entry = agentFor(req.tls);
      const timeouts = req.timeoutMs === undefined ? {} : { headersTimeout: req.timeoutMs, bodyTimeout: req.timeoutMs };
      const res = await request(url, { method: req.method ?? 'GET', headers: req.headers, body: req.body, signal: req.signal, dispatcher: entry.agent, ...timeouts });
      const { body, truncated } = await readBody(res.body, req.maxBodyBytes);
      return {
        url,
        status: res.statusCode,
        headers: res.headers,
        body,
        bodyTruncated: truncated,
        tls: url.protocol === 'https:' ? (entry.tlsByOrigin.get(originKey(url.hostname, url.port || '443')) ?? null) : null,
      };
    },
    async close(): Promise<void> {
      const all = [system, insecure, ...byCa.values()].filter((e): e is AgentEntry => e !== null);
      system = insecure = null;
      byCa.clear();
      await Promise.all(all.map((e) => e.agent.close().catch(() => undefined)));
    },
  };
}

function newAgent(config: Config, egress: EgressPolicy, insecure: boolean, ca: string | undefined): AgentEntry {
  const tlsByOrigin = new Map<string, TlsInfo>();
  // One secure context per Agent: the per-registry CA is added to the system roots (a token realm on a
  // public host must still verify) and not rebuilt for every connection.
  const secureContext: SecureContext | undefined = ca ? createSecureContext({ ca: [...rootCertificates, ca] }) : undefined;
  const connector = (lookup: EgressPolicy['lookup']) =>
    buildConnector({
      timeout: config.PROBE_CONNECT_TIMEOUT_MS,
      lookup,
      rejectUnauthorized: !insecure,
      ...(secureContext ? { secureContext } : {}),
    });
  const base = connector(egress.lookup);
  // Connections to a protected port (this service's, its database's) resolve without local addresses.
  const protectedPorts = new Map<number, ReturnType<typeof buildConnector>>();
  const agent = new Agent({
    connect: (opts, callback) => {
      const port = Number(opts.port || (opts.protocol === 'https:' ? 443 : 80));
      let connect = base;
      if (egress.protectsPort(port)) {
        connect = protectedPorts.get(port) ?? connector(egress.lookupFor(port));
        protectedPorts.set(port, connect);
      }
      connect(opts, (err, socket) => {
        if (!err && socket instanceof TLSSocket) {
          if (tlsByOrigin.size >= MAX_TLS_ORIGINS) tlsByOrigin.clear();
          tlsByOrigin.set(originKey(opts.hostname, String(opts.port || '443')), tlsInfo(socket));
        }
        (callback as (e: Error | null, s: typeof socket) => void)(err, socket);
      });
    },
    headersTimeout: config.PROBE_TIMEOUT_MS,
    bodyTimeout: config.PROBE_TIMEOUT_MS,
    keepAliveTimeout: 4000,
    connections: 64,
  });
  return { agent, tlsByOrigin };
}

function originKey(hostname: string, port: string): string {
  return `${hostname}:${port}`;
}

function tlsInfo(socket: TLSSocket): TlsInfo {
  const cert = socket.getPeerCertificate();
  const has = cert && Object.keys(cert).length > 0;
  const expires = has && cert.valid_to ? new Date(cert.valid_to) : null;
  return {
    protocol: socket.getProtocol() ?? null,
    cipher: socket.getCipher()?.name ?? null,
    cert_subject: has ? distinguishedName(cert.subject) : null,
    cert_issuer: has ? distinguishedName(cert.issuer) : null,
    cert_expires_at: expires && !Number.isNaN(expires.getTime()) ? expires.toISOString() : null,
  };
}

function distinguishedName(name: Record<string, string | string[] | undefined> | undefined): string | null {
  if (!name) return null;
  const parts = Object.entries(name)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`);
  return parts.length ? parts.join(', ') : null;
}

async function readBody(body: AsyncIterable<Buffer> & { destroy(): unknown }, limit: number): Promise<{ body: Buffer; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const room = limit - size;
    if (chunk.length > room) {
      if (room > 0) chunks.push(chunk.subarray(0, room));
      size = limit;
      body.destroy();
      return { body: Buffer.concat(chunks, size), truncated: true };
    }
    chunks.push(chunk);
    size += chunk.length;
  }
  return { body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size), truncated: false };
}

export function header(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * GET with at most MAX_REDIRECTS redirects followed by hand, each hop going through the egress policy again.
 * `Authorization` is sent only to the origin it was meant for.
 */
export async function getFollowing(client: HttpClient, req: HttpRequest): Promise<HttpResponse> {
  const origin = req.url.origin;
  let current = req;
  for (let hop = 0; ; hop++) {
    const res = await client.send(current);
    const location = header(res.headers, 'location');
    if (!isRedirect(res.status) || !location) return res;
    if (hop >= MAX_REDIRECTS) throw new ProbeError('too_many_redirects', `more than ${MAX_REDIRECTS} redirects (last to ${location})`);
    let next: URL;
    try {
      next = new URL(location, current.url);
    } catch {
      throw new ProbeError('invalid_url', `redirect to an invalid URL: ${location}`);
    }
    let headers = req.headers;
    if (next.origin !== origin && headers.Authorization !== undefined) {
      const { Authorization: _dropped, ...rest } = headers;
      headers = rest;
    }
    current = { ...req, url: next, headers };
  }
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}
