/**
 * The bounds of /resolve (issue 22 item 3) against the real service over HTTP: at most MAX_CANDIDATES
 * candidates per image with `truncated: true`, and a POST /resolve answer that would exceed
 * RESOLVE_MAX_ANSWER_BYTES refused with a 413 problem naming the limit and how many images fit. The same
 * against the built process with `npm start`'s heap cap and 800 mirrors: test/reliability/hostile-readers.
 */
import { entry } from '../support/entries';
import { call, startTestService, type TestService } from '../support/service';
import { MAX_CANDIDATES } from '../../src/resolve';

const LIMIT = 65_536;
let svc: TestService;

beforeAll(async () => {
  svc = await startTestService({ RESOLVE_MAX_ANSWER_BYTES: String(LIMIT) });
  // 30 pull-through caches of Docker Hub, and its origin.
  const mirrors = Array.from({ length: 30 }, (_, i) =>
    entry({ container_registry_name: `hub-cache-${String(i).padStart(2, '0')}`, container_registry_public_url: `http://127.0.0.${i + 2}:5000`, container_registry_config: { mirror_of: ['docker.io'] } }),
  );
  for (const e of [...mirrors, entry({ container_registry_name: 'hub', container_registry_image_prefix: 'docker.io' })]) {
    expect((await call(svc.url, 'POST', '/container_registry', e)).status).toBe(201);
  }
});
afterAll(async () => {
  await svc?.close();
});

test('When 31 registries serve an image, then GET and POST /resolve give the best MAX_CANDIDATES with truncated: true', async () => {
  const get = await call(svc.url, 'GET', '/resolve?image=nginx:1.27');
  expect(get.status).toBe(200);
  expect(get.body.truncated).toBe(true);
  // Mirrors come before the origin; among equal mirrors, by name.
  expect(get.body.candidates.map((c: { container_registry_name: string }) => c.container_registry_name)).toEqual(Array.from({ length: MAX_CANDIDATES }, (_, i) => `hub-cache-${String(i).padStart(2, '0')}`));

  const post = await call(svc.url, 'POST', '/resolve', { images: ['nginx:1.27', 'quay.io/nobody/app'] });
  expect(post.status).toBe(200);
  expect(post.body.results[0]).toEqual({ input: 'nginx:1.27', ...get.body });
  expect(post.body.results[1]).not.toHaveProperty('truncated');
});

test('When the answer to a batch would exceed RESOLVE_MAX_ANSWER_BYTES, then 413 problem+json names the limit and how many images fit; a smaller batch is answered', async () => {
  const images = Array.from({ length: 200 }, (_, i) => `team-${i}/app:${i}`);
  const big = await call(svc.url, 'POST', '/resolve', { images });
  expect(big.status).toBe(413);
  expect(big.headers.get('content-type')).toContain('application/problem+json');
  expect(big.body.detail).toContain(String(LIMIT));
  expect(big.body.errors).toEqual([{ path: '/images', message: expect.stringMatching(new RegExp(`exceeds ${LIMIT} bytes.*send at most (\\d+) images`)) }]);
  const fit = Number(/send at most (\d+) images/.exec(big.body.errors[0].message)![1]);
  expect(fit).toBeGreaterThan(0);

  const small = await call(svc.url, 'POST', '/resolve', { images: images.slice(0, fit) });
  expect(small.status).toBe(200);
  expect(small.body.results).toHaveLength(fit);
  expect(Buffer.byteLength(small.text)).toBeLessThanOrEqual(LIMIT);
  expect((await call(svc.url, 'POST', '/resolve', { images: images.slice(0, fit + 1) })).status).toBe(413);
});
