/**
 * How the status page's files are served (SPEC section 17), over real HTTP: without a key even in API-key
 * mode, with the right content types, a strict Content-Security-Policy, revalidation by ETag, only the
 * files of ui/ and the chart library, and no inline script or style anywhere in them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { CONTENT_SECURITY_POLICY } from '../../src/http/routes/status-page';
import { call, startTestService, type TestService } from '../support/service';
import { makeKeys } from '../security/keys';

const UI = path.resolve(__dirname, '..', '..', 'ui');
const keys = makeKeys();
let svc: TestService;

beforeAll(async () => {
  svc = await startTestService({ API_KEYS: keys.env });
});
afterAll(() => svc.close());

test('When / is fetched without a key in API-key mode, then the page is served as HTML with a strict CSP and no-cache', async () => {
  const res = await fetch(`${svc.url}/`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
  const csp = res.headers.get('content-security-policy')!;
  expect(csp).toBe(CONTENT_SECURITY_POLICY);
  for (const directive of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "object-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"]) expect(csp).toContain(directive);
  expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|https?:|\*/);
  expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  expect(res.headers.get('cache-control')).toBe('no-cache');
  expect(res.headers.get('etag')).toMatch(/^"[A-Za-z0-9_-]{27}"$/);
  expect(await res.text()).toBe(readFileSync(path.join(UI, 'index.html'), 'utf8'));
  // The API itself still needs a key.
  expect((await call(svc.url, 'GET', '/whoami')).status).toBe(401);
});

test('When each file of ui/ is fetched, then it comes with its content type, the CSP and its bytes', async () => {
  const types: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.html': 'text/html; charset=utf-8' };
  const files = readdirSync(UI).filter((f) => f !== 'index.html');
  expect(files).toEqual(expect.arrayContaining(['app.js', 'api.js', 'feed.js', 'chart.js', 'style.css', 'favicon.svg']));
  for (const file of files) {
    const res = await fetch(`${svc.url}/ui/${file}`);
    expect([file, res.status]).toEqual([file, 200]);
    expect(res.headers.get('content-type')).toBe(types[path.extname(file)]);
    expect(res.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY);
    expect(Buffer.from(await res.arrayBuffer()).equals(readFileSync(path.join(UI, file)))).toBe(true);
  }
});

test('When the chart library is fetched, then it is the file of node_modules (no CDN), as an ES module and its stylesheet', async () => {
  const js = await fetch(`${svc.url}/ui/uPlot.esm.js`);
  expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
  expect(Buffer.from(await js.arrayBuffer()).equals(readFileSync(require.resolve('uplot/dist/uPlot.esm.js')))).toBe(true);
  const css = await fetch(`${svc.url}/ui/uPlot.min.css`);
  expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
  expect(await css.text()).toBe(readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8'));
});

test('When a file is asked for again with its ETag, then the answer is 304 without a body; HEAD sends headers only', async () => {
  const first = await fetch(`${svc.url}/ui/app.js`);
  const etag = first.headers.get('etag')!;
  const again = await fetch(`${svc.url}/ui/app.js`, { headers: { 'If-None-Match': etag } });
  expect(again.status).toBe(304);
  expect(await again.text()).toBe('');
  const stale = await fetch(`${svc.url}/ui/app.js`, { headers: { 'If-None-Match': '"something-else"' } });
  expect(stale.status).toBe(200);
  const head = await fetch(`${svc.url}/ui/app.js`, { method: 'HEAD' });
  expect(head.status).toBe(200);
  expect(Number(head.headers.get('content-length'))).toBe(readFileSync(path.join(UI, 'app.js')).length);
});

test('When a path outside the served files is asked for, then it is a 404 problem and nothing is read from disk', async () => {
  for (const p of ['/ui/nope.js', '/ui/..%2Fpackage.json', '/ui/%2e%2e%2fsrc%2fconfig.ts', '/ui/index.html', '/ui/uPlot.cjs.js']) {
    const res = await call(svc.url, 'GET', p);
    expect([p, res.status]).toEqual([p, 404]);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
  }
  // Deeper paths are not the page's: the API answers them (401 without a key).
  expect((await call(svc.url, 'GET', '/ui/../package.json')).status).toBe(401);
  expect((await call(svc.url, 'GET', '/ui/sub/app.js')).status).toBe(401);
});

test('When the page and its modules are read, then there is no inline script, inline style, eval or HTML built from strings', () => {
  const html = readFileSync(path.join(UI, 'index.html'), 'utf8');
  expect(html).not.toMatch(/<style/i);
  expect(html).not.toMatch(/\sstyle=/i);
  expect(html).not.toMatch(/\son[a-z]+=/i);
  for (const m of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)) {
    expect(m[1]).toMatch(/\bsrc="\/ui\/[a-z]+\.js"/);
    expect(m[2]!.trim()).toBe('');
  }
  // Everything the page links to is served from /ui/.
  for (const m of html.matchAll(/(?:href|src)="([^"#]+)"/g)) expect(m[1]).toMatch(/^\/ui\/[A-Za-z0-9.]+$/);
  for (const file of readdirSync(UI).filter((f) => f.endsWith('.js'))) {
    const js = readFileSync(path.join(UI, file), 'utf8');
    expect([file, /\beval\(|new Function\(|innerHTML|outerHTML|insertAdjacentHTML|document\.write|setAttribute\(\s*['"]style|\.style\./.exec(js)?.[0] ?? null]).toEqual([file, null]);
    // Imports stay on this origin, under /ui/.
    for (const m of js.matchAll(/^import .* from '([^']+)';$/gm)) expect(m[1]).toMatch(/^\.\/[A-Za-z0-9.]+\.js$/);
  }
});

test('When the Docker image is built, then its runtime stage has the page and the chart library (a production dependency)', () => {
  const root = path.resolve(__dirname, '..', '..');
  const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
  const runtime = dockerfile.slice(dockerfile.indexOf(' AS runtime'));
  expect(runtime).toMatch(/^COPY ui \.\/ui$/m);
  expect(runtime).toMatch(/npm ci --omit=dev/);
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
  expect(pkg.dependencies.uplot).toBeDefined();
  expect(pkg.devDependencies['playwright-core']).toBeDefined();
});
