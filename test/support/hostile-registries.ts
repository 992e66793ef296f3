/**
 * Handlers for test/support/fake-servers.ts that play registries built to hurt a catalog (issue 14): too many
 * distinct blobs, endless tag pages, catalogs whose `Link` loops, `Link` headers built to make a regular
 * expression backtrack. Everything is generated on the fly from counters: nothing large is held here.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Handler } from './fake-servers';

const JSON_TYPE = { 'Content-Type': 'application/json', 'Docker-Distribution-API-Version': 'registry/2.0' };
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

function json(res: ServerResponse, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(200, { ...JSON_TYPE, ...headers }).end(typeof body === 'string' ? body : JSON.stringify(body));
}

function path(req: IncomingMessage): URL {
  return new URL(req.url ?? '/', 'http://registry');
}

/** A distinct, well-formed sha256 digest for every (a, b). */
export function syntheticDigest(a: number, b: number): string {
  return `sha256:${a.toString(16).padStart(8, '0')}${b.toString(16).padStart(8, '0')}${'c0ffee00'.repeat(6)}`;
}

/** Answers /v2/ like distribution; everything else 404. */
function base(req: IncomingMessage, res: ServerResponse): boolean {
  const url = path(req);
  if (url.pathname === '/v2/') {
    json(res, {});
    return true;
  }
  return false;
}

/**
 * One repository `big` with `tags` tags; every manifest lists `layers` layers no other manifest has (each of
 * `layerSize` bytes), so every manifest brings `layers + 2` new digests. At 42,000 layers a manifest is just
 * under the crawler's 4 MiB manifest cap.
 */
export function manyBlobsRegistry(opts: { tags: number; layers: number; layerSize?: number }): Handler & { manifestsServed(): number } {
  let served = 0;
  const size = opts.layerSize ?? 1000;
  const handler: Handler = (req, res) => {
    if (base(req, res)) return;
    const url = path(req);
    if (url.pathname === '/v2/_catalog') return json(res, { repositories: ['big'] });
    if (url.pathname === '/v2/big/tags/list') return json(res, { name: 'big', tags: Array.from({ length: opts.tags }, (_, i) => `t${i}`) });
    const m = /^\/v2\/big\/manifests\/t(\d+)$/.exec(url.pathname);
    if (!m) return void res.writeHead(404, JSON_TYPE).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
    const n = Number(m[1]);
    served++;
    const layers = new Array<string>(opts.layers);
    for (let i = 0; i < opts.layers; i++) layers[i] = `{"digest":"${syntheticDigest(n + 1, i)}","size":${size}}`;
    const body = `{"schemaVersion":2,"mediaType":"${OCI_MANIFEST}","config":{"digest":"${syntheticDigest(0, n)}","size":${size}},"layers":[${layers.join(',')}]}`;
    res.writeHead(200, { 'Content-Type': OCI_MANIFEST }).end(body);
  };
  return Object.assign(handler, { manifestsServed: () => served });
}

/**
 * One repository `flood` whose tag list never ends: every page holds `perPage` new tags of `length`
 * characters and links to the next page. Manifests are 404 (deleted since listed).
 */
export function tagFloodRegistry(opts: { perPage: number; length: number }): Handler & { pagesServed(): number } {
  let pages = 0;
  const handler: Handler = (req, res) => {
    if (base(req, res)) return;
    const url = path(req);
    if (url.pathname === '/v2/_catalog') return json(res, { repositories: ['flood'] });
    if (url.pathname === '/v2/flood/tags/list') {
      const page = Number(url.searchParams.get('page') ?? '0');
      pages++;
      const tags = new Array<string>(opts.perPage);
      for (let i = 0; i < opts.perPage; i++) tags[i] = `p${page}-${i}-`.padEnd(opts.length, 'x');
      return json(res, { name: 'flood', tags }, { Link: `</v2/flood/tags/list?n=1000&page=${page + 1}>; rel="next"` });
    }
    res.writeHead(404, JSON_TYPE).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
  };
  return Object.assign(handler, { pagesServed: () => pages });
}

/**
 * A catalog that never ends by itself: `self` answers every page with the same repository and a `Link` back to
 * the same page; `repeat-last` brings one new repository per page but always links to the same `last` cursor.
 */
export function loopingCatalogRegistry(mode: 'self' | 'repeat-last'): Handler & { catalogRequests(): number } {
  let requests = 0;
  const handler: Handler = (req, res) => {
    if (base(req, res)) return;
    const url = path(req);
    if (url.pathname === '/v2/_catalog') {
      requests++;
      if (mode === 'self') return json(res, { repositories: ['loop'] }, { Link: `</v2/_catalog?n=1000>; rel="next"` });
      return json(res, { repositories: [`loop${requests}`] }, { Link: `</v2/_catalog?n=1000&last=loop1>; rel="next"` });
    }
    if (url.pathname.endsWith('/tags/list')) return json(res, { tags: [] });
    res.writeHead(404, JSON_TYPE).end('{}');
  };
  return Object.assign(handler, { catalogRequests: () => requests });
}

/**
 * `repositories` repositories paged 100 at a time; every tag list carries a `Link` header that is a `prev`
 * link followed by `bombLength` '<' characters (no next link: a backtracking parser scans it quadratically).
 */
export function linkBombRegistry(opts: { repositories: number; bombLength: number }): Handler & { tagListsServed(): number } {
  let served = 0;
  const bomb = `</v2/x>; rel="prev", ${'<'.repeat(opts.bombLength)}`;
  const handler: Handler = (req, res) => {
    if (base(req, res)) return;
    const url = path(req);
    if (url.pathname === '/v2/_catalog') {
      const from = Number(url.searchParams.get('last')?.slice(1) ?? '-1') + 1;
      const names = Array.from({ length: Math.max(0, Math.min(100, opts.repositories - from)) }, (_, i) => `r${from + i}`);
      const more = from + names.length < opts.repositories;
      return json(res, { repositories: names }, more ? { Link: `</v2/_catalog?n=100&last=${names.at(-1)}>; rel="next"` } : {});
    }
    if (url.pathname.endsWith('/tags/list')) {
      served++;
      return json(res, { tags: ['v1'] }, { Link: bomb });
    }
    res.writeHead(404, JSON_TYPE).end('{}');
  };
  return Object.assign(handler, { tagListsServed: () => served });
}
