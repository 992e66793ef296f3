/**
 * Pull configuration routes (SPEC section 18), rendered by src/nodes from the in-memory prefix index and
 * view (no database query per request), the same functions the node agent writes its files with:
 *   GET /pull-config/containerd/:upstream/hosts.toml   containerd's certs.d/<upstream>/hosts.toml
 *   GET /pull-config/registries.conf                   containers-registries.conf (v2)
 * Both answer text/plain with a strong ETag (a hash of the text; If-None-Match gives 304) and
 * X-Catalog-Revision, the revision of the catalog the text was rendered at.
 */
import { createHash } from 'node:crypto';
import { Router, type Request, type Response } from 'express';
import { InputError, NotFoundError } from '../../errors';
import { parseUpstream, type PullConfig } from '../../nodes';
import type { Access } from '../auth';
import { op, problem, type ApiPaths } from '../api-doc';
import { indexReady, type IndexReadiness } from './resolve';

export const TEXT = 'text/plain; charset=utf-8';

/** The strong entity tag of a rendered file: its SHA-256, base64url, shortened. */
export function textEtag(text: string): string {
  return `"${createHash('sha256').update(text, 'utf8').digest('base64url').slice(0, 27)}"`;
}

function sendText(req: Request, res: Response, text: string, revision: number): void {
  const etag = textEtag(text);
  res.setHeader('ETag', etag);
  res.setHeader('X-Catalog-Revision', String(revision));
  res.setHeader('Cache-Control', 'no-cache');
  const given = req.get('If-None-Match');
  if (given && given.split(',').some((t) => t.trim() === etag || t.trim() === '*')) {
    res.status(304).end();
    return;
  }
  res.type(TEXT).send(text);
}

export function pullConfigRoutes(deps: IndexReadiness & { pull: PullConfig; can: Access['can']; revision: () => number }): Router {
  const r = Router();
  const ready = indexReady(deps);

  r.get('/pull-config/containerd/:upstream/hosts.toml', deps.can('read'), ready, (req, res) => {
    const given = String(req.params.upstream);
    const name = parseUpstream(given, { host: true });
    if (!name.ok) throw new InputError(`"${given.slice(0, 100)}" is not a registry host: ${name.reason}.`, [{ path: 'upstream', message: `is not a registry host: ${name.reason}` }]);
    const revision = deps.revision();
    const text = deps.pull.hostsToml(name.prefix);
    if (text === null) {
      throw new NotFoundError(
        `The catalog knows no mirror of ${name.prefix.name}: no entry's container_registry_config.mirror_of names it. ` +
          `(Mirrors of a namespace under it, such as ${name.prefix.name}/team, cannot be written per host; GET /pull-config/registries.conf carries them.)`,
      );
    }
    sendText(req, res, text, revision);
  });

  r.get('/pull-config/registries.conf', deps.can('read'), ready, (req, res) => {
    const revision = deps.revision();
    sendText(req, res, deps.pull.registriesConf(), revision);
  });

  return r;
}

const pullConfigHeaders = {
  ETag: { description: 'A strong entity tag of the text (send it as If-None-Match).', schema: { type: 'string' } },
  'X-Catalog-Revision': { description: 'The catalog revision the text was rendered at.', schema: { type: 'string' } },
};

/** Pull configuration for nodes (OpenAPI; assembled by src/openapi.ts) */
export const pullConfigApi: ApiPaths = {
  '/pull-config/containerd/{upstream}/hosts.toml': {
    parameters: [{ name: 'upstream', in: 'path', required: true, description: 'A registry host as images name it (`docker.io`, `quay.io`, `127.0.0.1:5000`); `index.docker.io` means `docker.io`, the host is compared without case.', schema: { type: 'string' } }],
    get: op('read', 'containerd’s certs.d/<upstream>/hosts.toml: the upstream’s mirrors best first, the upstream itself as the server (last resort)', {
      operationId: 'containerdHostsToml',
      description:
        'Rendered from the in-memory catalog by the functions the node agent writes its files with. Mirrors are the entries whose `container_registry_config.mirror_of` is this host, in /resolve’s order (healthy, degraded, unknown), unhealthy ones left out; `override_path` when the mirror keeps the names under a path; `ca` names a file the agent writes beside hosts.toml, `skip_verify` from `insecure_skip_tls_verify`.',
      parameters: [{ name: 'If-None-Match', in: 'header', required: false, description: 'An ETag of an earlier answer: 304 when the text is unchanged.', schema: { type: 'string' } }],
      responses: {
        '200': { description: 'The file.', headers: pullConfigHeaders, content: { 'text/plain': { schema: { type: 'string' } } } },
        '304': { description: 'Not modified (If-None-Match).' },
        '400': problem('`upstream` is not a registry host (it has a path, or is no valid host[:port]).'),
        '404': problem('No entry mirrors this host.'),
      },
    }),
  },
  '/pull-config/registries.conf': {
    get: op('read', 'containers-registries.conf (v2) for CRI-O, podman and skopeo: one [[registry]] per mirrored upstream, its mirrors best first', {
      operationId: 'registriesConf',
      parameters: [{ name: 'If-None-Match', in: 'header', required: false, description: 'An ETag of an earlier answer: 304 when the text is unchanged.', schema: { type: 'string' } }],
      responses: {
        '200': { description: 'The file (only comments when nothing is mirrored).', headers: pullConfigHeaders, content: { 'text/plain': { schema: { type: 'string' } } } },
        '304': { description: 'Not modified (If-None-Match).' },
      },
    }),
  },
};
