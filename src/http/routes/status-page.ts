/**
 * The status page (SPEC section 17): `GET /` and its static assets under `GET /ui/:file`, served without a
 * key (the page asks for one and sends it on its own API calls). The files are the repository's `ui/`
 * folder (plain ES modules and CSS, no build step) plus the chart library from node_modules (uPlot), read
 * once at startup into memory: only those files can ever be served, so no request path reaches the disk.
 *
 * Every answer carries a strict Content-Security-Policy (everything from this origin only, no inline
 * script or style, no eval, no framing, no form submission), `nosniff`, and `Cache-Control: no-cache` with
 * a strong ETag: the files have no content hash in their names, so browsers revalidate (a 304 is cheap).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Router, type Request, type Response } from 'express';
import { NotFoundError } from '../../errors';
import { type ApiPaths, op, problem } from '../api-doc';

export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** Files taken from node_modules, by the name the page loads them under. */
const VENDOR: Record<string, string> = {
  'uPlot.esm.js': 'uplot/dist/uPlot.esm.js',
  'uPlot.min.css': 'uplot/dist/uPlot.min.css',
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

function asset(file: string): Asset {
  const body = readFileSync(file);
  const type = TYPES[path.extname(file)];
  if (!type) throw new Error(`status page: no content type for ${file}`);
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
}

/**
 * The repository's ui/ folder: found by walking up from this file (src/http/routes under ts-jest,
 * dist/src/http/routes when built, or a build folder elsewhere in the repository).
 */
export function findUiDir(from: string = __dirname): string {
  let dir = from;
  for (let i = 0; i < 8; i++) {
    const candidate = path.join(dir, 'ui');
    if (existsSync(path.join(candidate, 'index.html'))) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error(`status page: no ui/index.html found above ${from}`);
}

/** Every file the page may load, by name: ui/*.{html,js,css,svg} and the vendor files. */
export function loadAssets(uiDir: string = findUiDir()): Map<string, Asset> {
  const out = new Map<string, Asset>();
  for (const name of readdirSync(uiDir).sort()) {
    if (TYPES[path.extname(name)] && /^[A-Za-z0-9._-]+$/.test(name)) out.set(name, asset(path.join(uiDir, name)));
  }
  for (const [name, module] of Object.entries(VENDOR)) out.set(name, asset(require.resolve(module)));
  return out;
}

function send(req: Request, res: Response, a: Asset): void {
  res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  res.setHeader('Cache-Control', 'no-cache');
  res.setHeader('ETag', a.etag);
  res.setHeader('Content-Type', a.type);
  const given = req.get('If-None-Match');
  if (given && given.split(',').some((t) => t.trim() === a.etag)) {
    res.status(304).end();
    return;
  }
  res.setHeader('Content-Length', a.body.length);
  res.end(req.method === 'HEAD' ? undefined : a.body);
}

export function statusPageRoutes(assets: Map<string, Asset> = loadAssets()): Router {
  const r = Router();
  const index = assets.get('index.html');
  if (!index) throw new Error('status page: ui/index.html is missing');

  r.get('/', (req, res) => send(req, res, index));

  r.get('/ui/:file', (req, res) => {
    const name = String(req.params.file);
    const a = name === 'index.html' ? undefined : assets.get(name);
    if (!a) throw new NotFoundError(`The status page has no file ${JSON.stringify(name)}.`);
    send(req, res, a);
  });

  return r;
}

/** The status page and its files. (OpenAPI; assembled by src/openapi.ts) */
export const statusPageApi: ApiPaths = {
  '/': {
    get: op(null, 'The status page (HTML; its scripts ask for an API key when one is needed)', {
      operationId: 'statusPage',
      responses: { '200': { description: 'The page, with a strict Content-Security-Policy.', content: { 'text/html': { schema: { type: 'string' } } } }, '304': { description: 'Not modified (If-None-Match).' } },
    }),
  },
  '/ui/{file}': {
    parameters: [{ name: 'file', in: 'path', required: true, description: 'A file of the status page (ui/ and the chart library).', schema: { type: 'string' } }],
    get: op(null, 'A static file of the status page (ES module, stylesheet or icon)', {
      operationId: 'statusPageAsset',
      responses: {
        '200': {
          description: 'The file, with a strict Content-Security-Policy, `Cache-Control: no-cache` and an ETag.',
          content: { 'text/javascript': { schema: { type: 'string' } }, 'text/css': { schema: { type: 'string' } }, 'image/svg+xml': { schema: { type: 'string' } } },
        },
        '304': { description: 'Not modified (If-None-Match).' },
        '404': problem('No such file.'),
      },
    }),
  },
};
