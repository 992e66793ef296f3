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
  res.writeHead(200, { ...JSON_TYPE, ...headers }).end(Buffer.isBuffer(body) ? body : JSON.stringify(body));
}

function path(req: IncomingMessage): URL {
  return new URL(req.url ?? '/', 'http://registry');
}

const HOLE = '########';

/**
 * A body made once, with 8-character holes (`########`) that each request fills by copying: a 4 or 13 MB
 * answer costs the test process a memory copy, not a JSON.stringify that would stall its own event loop.
 */
function template(text: string): (fill: (hole: number) => number) => Buffer {
  const bytes = Buffer.from(text, 'latin1');
  const holes: number[] = [];
  for (let at = text.indexOf(HOLE); at >= 0; at = text.indexOf(HOLE, at + HOLE.length)) holes.push(at);
  return (fill) => {
    const body = Buffer.from(bytes);
    let last = NaN;
    let hex = Buffer.alloc(0);
    holes.forEach((at, k) => {
      const v = fill(k);
      if (v !== last) hex = Buffer.from(v.toString(16).padStart(8, '0'), 'latin1');
      last = v;
      hex.copy(body, at);
    });
    return body;
  };
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
 * under the crawler's 4 MiB manifest cap. Manifest `tN` is syntheticDigest(0, N) as config and
 * syntheticDigest(N + 1, i) as layers: one template, its 8-digit fields patched per request (cheap enough to
 * leave the test process's event loop free).
 */
export function manyBlobsRegistry(opts: { tags: number; layers: number; layerSize?: number }): Handler & { manifestsServed(): number } {
  let served = 0;
  const size = opts.layerSize ?? 1000;
  const fill = syntheticDigest(0, 0).slice(7 + 16);
  const layers = Array.from({ length: opts.layers }, (_, i) => `{"digest":"sha256:${HOLE}${i.toString(16).padStart(8, '0')}${fill}","size":${size}}`);
  const manifest = template(`{"schemaVersion":2,"mediaType":"${OCI_MANIFEST}","config":{"digest":"sha256:00000000${HOLE}${fill}","size":${size}},"layers":[${layers.join(',')}]}`);
  const handler: Handler = (req, res) => {
    if (base(req, res)) return;
    const url = path(req);
    if (url.pathname === '/v2/_catalog') return json(res, { repositories: ['big'] });
    if (url.pathname === '/v2/big/tags/list') return json(res, { name: 'big', tags: Array.from({ length: opts.tags }, (_, i) => `t${i}`) });
    const m = /^\/v2\/big\/manifests\/t(\d+)$/.exec(url.pathname);
    if (!m) return void res.writeHead(404, JSON_TYPE).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
    served++;
    const n = Number(m[1]);
    res.writeHead(200, { 'Content-Type': OCI_MANIFEST }).end(manifest((hole) => (hole === 0 ? n : n + 1)));
  };
  return Object.assign(handler, { manifestsServed: () => served });
}

/**
 * One repository `flood` whose tag list never ends: every page holds `perPage` new tags of `length`
 * characters and links to the next page. Manifests are 404 (deleted since listed).
 */
export function tagFloodRegistry(opts: { perPage: number; length: number }): Handler & { pagesServed(): number } {
  let pages = 0;
  const tags = Array.from({ length: opts.perPage }, (_, i) => `"p${HOLE}-${i}-`.padEnd(opts.length + 1, 'x') + '"');
  const page = template(`{"name":"flood","tags":[${tags.join(',')}]}`);
  const handler: Handler = (req, res) => {
    if (base(req, res)) return;
    const url = path(req);
    if (url.pathname === '/v2/_catalog') return json(res, { repositories: ['flood'] });
    if (url.pathname === '/v2/flood/tags/list') {
      const n = Number(url.searchParams.get('page') ?? '0');
      pages++;
      return json(res, page(() => n), { Link: `</v2/flood/tags/list?n=1000&page=${n + 1}>; rel="next"` });
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
