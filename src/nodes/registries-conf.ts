/**
 * containers-registries.conf (v2; containers/image docs/containers-registries.conf.5.md), read by CRI-O,
 * podman, buildah and skopeo: one `[[registry]]` per mirrored upstream (`prefix` = `location` = the
 * upstream), its `[[registry.mirror]]` tables in the order they are tried, the upstream itself last. A
 * mirror's `location` takes the place of the prefix in a name (the rule /resolve follows). `insecure`
 * (plain http allowed, certificates not verified) for mirrors over plain http or with TLS verification
 * off. Pure: upstreams in, text out.
 */
import { commentText, tomlString } from './toml';
import type { PullHost, Upstream } from './upstreams';

const HEADER = [
  '# containers-registries.conf (v2), written by registry-db from its catalog (GET /pull-config/registries.conf):',
  '# one [[registry]] per mirrored upstream, its mirrors best first (healthy, degraded, unknown; unhealthy ones',
  '# left out), the upstream itself tried last. registry-db-agent rewrites it when the catalog changes: edits',
  '# made here are lost. Install it as a drop-in, e.g. /etc/containers/registries.conf.d/50-registry-db.conf.',
];

const insecure = (h: PullHost) => h.plainHttp || h.skipVerify;

function registry(u: Upstream): string[] {
  const lines = ['', '[[registry]]', `prefix = ${tomlString(u.prefix)}`, `location = ${tomlString(u.prefix)}`];
  if (u.origin && insecure(u.origin)) lines.push('insecure = true');
  if (u.unhealthy.length > 0) lines.push(`# left out, unhealthy: ${commentText(u.unhealthy.join(', '))}`);
  for (const h of u.mirrors) {
    lines.push('', `# ${commentText(h.name)} (${h.status})`, '[[registry.mirror]]', `location = ${tomlString(h.location)}`);
    if (insecure(h)) lines.push('insecure = true');
  }
  return lines;
}

/** The whole file for these upstreams (in the order given). */
export function registriesConf(upstreams: readonly Upstream[]): string {
  return [...HEADER, ...upstreams.flatMap(registry)].join('\n') + '\n';
}
