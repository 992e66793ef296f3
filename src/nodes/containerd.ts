/**
 * containerd's registry host configuration (`certs.d/<host>/hosts.toml`, containerd docs/hosts.md): one
 * file per upstream registry host, its mirrors as `[host."URL"]` tables tried in the order written, then
 * `server` (the upstream itself) as the last resort. A mirror's TLS settings come along: `skip_verify`, and
 * `ca` naming a CA file that lives beside hosts.toml (containerd resolves relative paths against the
 * file's directory), so the directory of an upstream is a small set of files: `containerdFiles`.
 * Pure: an upstream in, text out.
 */
import { commentText, tomlArray, tomlString } from './toml';
import type { PullHost, Upstream } from './upstreams';

export const HOSTS_TOML = 'hosts.toml';

/** Docker Hub's registry API host: what containerd itself uses for `docker.io` when no server is configured. */
const DOCKER_HUB_SERVER = 'https://registry-1.docker.io';

/** The file name of an entry's CA certificate beside hosts.toml (the entry id made safe for a file name). */
export function caFileName(id: string): string {
  return `ca-${id.replace(/[^A-Za-z0-9._-]/g, '_')}.crt`;
}

/**
 * The URL containerd is given for a mirror. containerd appends `/v2` to it, unless `override_path` says the
 * URL already is the API root: needed when the upstream's names sit under a path on the mirror
 * (`cache:5000/hub` → `http://cache:5000/v2/hub`, so `library/nginx` is asked as `/v2/hub/library/nginx/...`).
 */
function mirrorUrl(h: PullHost): { url: string; overridePath: boolean } {
  if (h.path === '' && !h.url.endsWith('/v2')) return { url: h.url, overridePath: false };
  return { url: `${h.url}/v2${h.path ? `/${h.path}` : ''}`, overridePath: true };
}

/** `ca` and `skip_verify` lines, indented; none for plain http (containerd would then try https first). */
function tlsLines(h: PullHost, indent: string): string[] {
  if (h.plainHttp) return [];
  const lines: string[] = [];
  if (h.ca) lines.push(`${indent}ca = ${tomlString(caFileName(h.id))}`);
  if (h.skipVerify) lines.push(`${indent}skip_verify = true`);
  return lines;
}

/** Who the upstream's last resort is: its entry's URL when the catalog has one, else https (Docker Hub's API host for docker.io). */
function server(u: Upstream): string {
  if (u.origin) return u.origin.url;
  return u.prefix === 'docker.io' ? DOCKER_HUB_SERVER : `https://${u.prefix}`;
}

/** The text of `certs.d/<u.prefix>/hosts.toml`. */
export function hostsToml(u: Upstream): string {
  const lines = [
    `# containerd hosts.toml for ${commentText(u.prefix)}, written by registry-db from its catalog`,
    `# (GET /pull-config/containerd/${commentText(u.prefix)}/hosts.toml): the mirrors best first (healthy, degraded,`,
    '# unknown; unhealthy ones left out), then the server, the upstream itself. registry-db-agent rewrites it',
    '# when the catalog changes: edits made here are lost.',
    `server = ${tomlString(server(u))}`,
    ...(u.origin ? tlsLines(u.origin, '') : []),
  ];
  if (u.unhealthy.length > 0) lines.push(`# left out, unhealthy: ${commentText(u.unhealthy.join(', '))}`);
  for (const h of u.mirrors) {
    const { url, overridePath } = mirrorUrl(h);
    lines.push('', `# ${commentText(h.name)} (${h.status})`, `[host.${tomlString(url)}]`, `  capabilities = ${tomlArray(['pull', 'resolve'])}`);
    if (overridePath) lines.push('  override_path = true');
    lines.push(...tlsLines(h, '  '));
  }
  return lines.join('\n') + '\n';
}

/** Every file of the upstream's directory: hosts.toml and the CA files it names, by file name. */
export function containerdFiles(u: Upstream): Map<string, string> {
  const files = new Map<string, string>([[HOSTS_TOML, hostsToml(u)]]);
  for (const h of [...(u.origin ? [u.origin] : []), ...u.mirrors]) {
    if (h.ca && !h.plainHttp) files.set(caFileName(h.id), h.ca.endsWith('\n') ? h.ca : `${h.ca}\n`);
  }
  return files;
}
