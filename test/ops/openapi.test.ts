/**
 * GET /openapi.json: OpenAPI 3.1 built from schemas/, validated by a real validator
 * (@seriousme/openapi-schema-validator, run as its CLI since it is ESM-only), listing every route the
 * running application serves (read from Express's own router, so a route added without documentation fails).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Express } from 'express';
import { call, startTestService, type TestService } from '../support/service';

let svc: TestService;
beforeAll(async () => {
  svc = await startTestService();
});
afterAll(() => svc.close());

interface Layer {
  route?: { path: string; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
}

/** `METHOD /path/{param}` of every route of the app, nested routers included. */
function servedRoutes(app: Express): Set<string> {
  const out = new Set<string>();
  const walk = (stack: Layer[]) => {
    for (const layer of stack) {
      if (layer.route) {
        for (const [method, on] of Object.entries(layer.route.methods)) {
          if (on && method !== '_all') out.add(`${method.toUpperCase()} ${layer.route.path.replace(/:(\w+)/g, '{$1}')}`);
        }
      } else if (layer.handle?.stack) {
        walk(layer.handle.stack);
      }
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack);
  return out;
}

test('When /openapi.json is fetched without a key, then it is a valid OpenAPI 3.1 document', async () => {
  const res = await call(svc.url, 'GET', '/openapi.json');
  expect(res.status).toBe(200);
  expect(res.body.openapi).toBe('3.1.0');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'openapi-'));
  try {
    const file = path.join(dir, 'openapi.json');
    writeFileSync(file, res.text);
    const cli = require.resolve('@seriousme/openapi-schema-validator/bin/validate-api-cli.js');
    const { stdout } = await promisify(execFile)(process.execPath, [cli, file]).catch((e: { stdout: string }) => ({ stdout: e.stdout }));
    const result = JSON.parse(stdout) as { valid: boolean; errors?: unknown };
    expect(result).toEqual({ valid: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('When the document is compared with the running application, then it lists every route and method served', async () => {
  const doc = (await call(svc.url, 'GET', '/openapi.json')).body as { paths: Record<string, Record<string, unknown>> };
  const documented = new Set(
    Object.entries(doc.paths).flatMap(([p, item]) => Object.keys(item).filter((k) => k !== 'parameters').map((m) => `${m.toUpperCase()} ${p}`)),
  );
  const served = servedRoutes(svc.parts.app);
  expect(served.size).toBeGreaterThanOrEqual(11);
  for (const route of served) expect(documented).toContain(route);
  for (const route of documented) expect(served).toContain(route);
});

test('When the document describes bodies and errors, then they reference the schemas of schemas/ and problem+json', async () => {
  const doc = (await call(svc.url, 'GET', '/openapi.json')).body;
  const create = doc.paths['/container_registry'].post;
  expect(create.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/ContainerRegistry' });
  expect(create.responses['409'].content['application/problem+json'].schema).toEqual({ $ref: '#/components/schemas/Problem' });
  expect(doc.paths['/container_registries'].post.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/ContainerRegistryFilter' });
  expect(doc.paths['/container_registry/{id}'].put.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/ContainerRegistryUpdate' });
  expect(doc.paths['/container_registry/{id}'].delete['x-permission']).toBe('delete');
  expect(doc.paths['/healthz'].get.security).toEqual([]);
  // $id-relative references were turned into components: none points outside the document.
  const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"([^"]+)"/g)].map((m) => m[1]!);
  expect(refs.length).toBeGreaterThan(10);
  for (const ref of refs) {
    expect(ref).toMatch(/^#\/components\/schemas\/[A-Za-z0-9_.-]+$/);
    expect(doc.components.schemas).toHaveProperty([ref.split('/').pop()!]);
  }
});
