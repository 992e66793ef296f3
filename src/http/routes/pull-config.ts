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
