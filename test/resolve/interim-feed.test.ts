/**
 * The temporary loader of the resolver's index (src/resolve-interim-feed.ts), until the change feed replaces
 * it: the catalog is read in the background, /resolve answers 503 until it is loaded, and writes made while
 * it was read win over the older snapshot. Real service, real database; the second loader's read of the
 * catalog is held back after it completes, so its snapshot is older than the writes made meanwhile.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createAccess } from '../../src/http/auth';
import { problemMiddleware } from '../../src/http/problem';
import { resolveRoutes } from '../../src/http/routes/resolve';
import type { RegistryRepository } from '../../src/registries/repository';
import { PrefixIndex } from '../../src/resolve';
import { feedResolverInterim } from '../../src/resolve-interim-feed';
import { createLogger } from '../../src/logger';
import { entry } from '../support/entries';
import { call, startTestService, type TestService } from '../support/service';
import { refusedUrl } from '../health/loopback';

let svc: TestService;
beforeAll(async () => {
  svc = await startTestService({ PROBE_TIMEOUT_MS: '1500' });
});
afterAll(() => svc?.close());

async function create(name: string, fields: Record<string, unknown>): Promise<string> {
  const res = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_name: name, ...fields }));
  expect(res.status).toBe(201);
  return res.body.container_registry_id as string;
}

const names = (index: PrefixIndex, ref: string) => index.resolve(ref).candidates.map((c) => `${c.container_registry_name}:${c.status}`);

test('When writes happen while the catalog is being read, then they win over the older snapshot, and /resolve answers 503 until it is loaded', async () => {
  const dead = await refusedUrl();
  const a = await create('a', { container_registry_image_prefix: 'a.example.com', container_registry_config: { mirror_of: ['docker.io'] } });
  const b = await create('b', { container_registry_image_prefix: 'b.example.com' });
  const c = await create('c', { container_registry_image_prefix: 'c.example.com', container_registry_public_url: dead });
  await create('e', { container_registry_image_prefix: 'e.example.com' });

  // A second index, fed through the same service and writer, whose catalog read is held after it completes.
  let readDone!: () => void;
  const read = new Promise<void>((r) => (readDone = r));
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const repository = Object.create(svc.parts.repository) as RegistryRepository;
  repository.findAllFields = async (projection) => {
    const docs = await svc.parts.repository.findAllFields(projection);
    readDone();
    await gate;
    return docs;
  };
  const index = new PrefixIndex();
  const feed = feedResolverInterim({ index, repository, registries: svc.parts.registries, writer: svc.parts.health.writer, logger: createLogger('error') });

  // Its routes, on a listener of their own.
  const access = createAccess([]);
  const app = express().use(access.authenticate).use(resolveRoutes({ resolver: index, can: access.can, bodyLimit: 65536, isReady: feed.ready })).use(problemMiddleware(createLogger('error')));
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    await read;
    const early = await call(url, 'GET', '/resolve?image=e.example.com/x');
    expect(early.status).toBe(503);
    expect(early.headers.get('retry-after')).toBe('2');
    expect((await call(url, 'POST', '/resolve', { images: ['nginx'] })).status).toBe(503);

    // Writes after the snapshot was read.
    expect((await call(svc.url, 'PUT', `/container_registry/${a}`, { $set: { 'container_registry_config.mirror_of': ['quay.io'] } })).status).toBe(200);
    expect((await call(svc.url, 'DELETE', `/container_registry/${b}`)).status).toBe(204);
    await create('d', { container_registry_image_prefix: 'd.example.com' });
    expect((await call(svc.url, 'GET', `/check_container_health/${c}`)).body.status).toBe('unhealthy');
    expect(feed.ready()).toBe(false);

    release();
    await feed.loaded;
    expect(feed.ready()).toBe(true);
    expect(names(index, 'nginx')).toEqual([]);
    expect(names(index, 'quay.io/org/app')).toEqual(['a:unknown']);
    expect(names(index, 'b.example.com/x')).toEqual([]);
    expect(names(index, 'd.example.com/x')).toEqual(['d:unknown']);
    expect(names(index, 'c.example.com/x')).toEqual(['c:unhealthy']);
    expect(names(index, 'e.example.com/x')).toEqual(['e:unknown']);
    expect((await call(url, 'GET', '/resolve?image=e.example.com/x')).status).toBe(200);

    // Once loaded, changes apply at once.
    expect((await call(svc.url, 'DELETE', `/container_registry/${c}`)).status).toBe(204);
    expect(names(index, 'c.example.com/x')).toEqual([]);
  } finally {
    feed.stop();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
