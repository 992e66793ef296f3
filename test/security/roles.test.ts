/**
 * The role matrix over every route (SPEC sections 8 and 18, issues 4 and 17): no key 401, wrong key 401, a
 * role without the permission 403 naming the roles that have it, the others served; `Bearer` and `Simple`
 * both accepted. `puller` (a node) reads and fetches pull credentials, nothing else; of the others only
 * `admin` fetches pull credentials. Real service, real HTTP, real database.
 */
import { PERMISSIONS, type Permission } from '../../src/http/auth';
import { call, startTestService, type TestService } from '../support/service';
import { entry } from '../support/entries';
import { bearer, makeKeys, simple } from './keys';

type Role = 'reader' | 'writer' | 'admin' | 'puller';
const ROLES: Role[] = ['reader', 'puller', 'writer', 'admin'];
/** Who each kind of route serves (written out here, not taken from auth.ts, so the matrix checks it). */
const SERVED = {
  reader: ['reader', 'puller', 'writer', 'admin'],
  writer: ['writer', 'admin'],
  admin: ['admin'],
  puller: ['puller', 'admin'],
} as const satisfies Record<string, readonly Role[]>;

const keys = makeKeys();
let svc: TestService;

/** Creates an entry as admin; its URL is a closed loopback port, so a probe fails fast and stays on loopback. */
async function newEntry(): Promise<string> {
  const res = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_public_url: 'http://127.0.0.1:9' }), bearer(keys.admin));
  expect(res.status).toBe(201);
  return res.body.container_registry_id as string;
}

/** Creates an entry mirroring 127.0.0.1:9 (so that its hosts.toml exists), with credentials. */
async function newMirror(): Promise<void> {
  const body = entry({ container_registry_public_url: 'http://127.0.0.1:19', container_registry_config: { mirror_of: ['127.0.0.1:9'] }, container_registry_credentials: { username: 'u', password: 'matrix-secret' } });
  expect((await call(svc.url, 'POST', '/container_registry', body, bearer(keys.admin))).status).toBe(201);
}

/** Creates a webhook subscription as admin (to a closed loopback port: deliveries fail and stay on loopback). */
async function newWebhook(): Promise<string> {
  const res = await call(svc.url, 'POST', '/webhooks', { url: 'http://127.0.0.1:9/hook', events: ['registry.deleted'] }, bearer(keys.admin));
  expect(res.status).toBe(201);
  return res.body.id as string;
}

interface Route {
  method: string;
  path: string;
  /** Who is served. */
  role: keyof typeof SERVED;
  /** Status when served. */
  ok: number;
  /** Builds a request that succeeds for a role high enough. */
  request: () => Promise<{ path: string; body?: unknown }>;
}

const ROUTES: Route[] = [
  { method: 'POST', path: '/container_registry', role: 'writer', ok: 201, request: async () => ({ path: '/container_registry', body: entry() }) },
  { method: 'GET', path: '/container_registry/:id', role: 'reader', ok: 200, request: async () => ({ path: `/container_registry/${await newEntry()}` }) },
  {
    method: 'PUT',
    path: '/container_registry/:id',
    role: 'writer',
    ok: 200,
    request: async () => ({ path: `/container_registry/${await newEntry()}`, body: { $addToSet: { container_registry_tags: 'x' } } }),
  },
  { method: 'DELETE', path: '/container_registry/:id', role: 'admin', ok: 204, request: async () => ({ path: `/container_registry/${await newEntry()}` }) },
  { method: 'POST', path: '/container_registries', role: 'reader', ok: 200, request: async () => ({ path: '/container_registries', body: {} }) },
  { method: 'GET', path: '/check_container_health/:id', role: 'writer', ok: 200, request: async () => ({ path: `/check_container_health/${await newEntry()}` }) },
  { method: 'GET', path: '/health_report', role: 'reader', ok: 200, request: async () => ({ path: '/health_report' }) },
  { method: 'GET', path: '/metrics', role: 'reader', ok: 200, request: async () => ({ path: '/metrics' }) },
  // newEntry's image prefix is its URL's host:port, 127.0.0.1:9
  { method: 'GET', path: '/resolve', role: 'reader', ok: 200, request: async () => (await newEntry(), { path: '/resolve?image=127.0.0.1:9/team/app:1' }) },
  { method: 'POST', path: '/resolve', role: 'reader', ok: 200, request: async () => ({ path: '/resolve', body: { images: ['127.0.0.1:9/app', 'nginx'] } }) },
  { method: 'GET', path: '/pull-config/containerd/:upstream/hosts.toml', role: 'reader', ok: 200, request: async () => (await newMirror(), { path: '/pull-config/containerd/127.0.0.1:9/hosts.toml' }) },
  { method: 'GET', path: '/pull-config/registries.conf', role: 'reader', ok: 200, request: async () => ({ path: '/pull-config/registries.conf' }) },
  { method: 'POST', path: '/pull-credentials', role: 'puller', ok: 200, request: async () => (await newMirror(), { path: '/pull-credentials', body: { image: '127.0.0.1:9/team/app:1' } }) },
  { method: 'POST', path: '/webhooks', role: 'admin', ok: 201, request: async () => ({ path: '/webhooks', body: { url: 'http://127.0.0.1:9/hook', events: ['registry.created'] } }) },
  { method: 'GET', path: '/webhooks', role: 'admin', ok: 200, request: async () => ({ path: '/webhooks' }) },
  { method: 'GET', path: '/webhooks/:id', role: 'admin', ok: 200, request: async () => ({ path: `/webhooks/${await newWebhook()}` }) },
  { method: 'DELETE', path: '/webhooks/:id', role: 'admin', ok: 204, request: async () => ({ path: `/webhooks/${await newWebhook()}` }) },
  { method: 'GET', path: '/webhooks/:id/deliveries', role: 'admin', ok: 200, request: async () => ({ path: `/webhooks/${await newWebhook()}/deliveries` }) },
];

beforeAll(async () => {
  svc = await startTestService({ API_KEYS: keys.env });
});
afterAll(() => svc.close());

describe('Role matrix', () => {
  describe.each(ROUTES)('$method $path (needs $role)', (route) => {
    test('When no key is sent, then it is a 401 problem with a WWW-Authenticate challenge', async () => {
      const { path, body } = await route.request();
      const res = await call(svc.url, route.method, path, body);
      expect(res.status).toBe(401);
      expect(res.headers.get('content-type')).toMatch(/application\/problem\+json/);
      expect(res.headers.get('www-authenticate')).toMatch(/Bearer realm=.*Simple realm=/);
    });

    test('When an unknown key is sent in either form, then it is a 401', async () => {
      const { path, body } = await route.request();
      expect((await call(svc.url, route.method, path, body, bearer(keys.wrong))).status).toBe(401);
      expect((await call(svc.url, route.method, path, body, simple(keys.wrong))).status).toBe(401);
      expect((await call(svc.url, route.method, path, body, { Authorization: `Basic ${Buffer.from(`x:${keys.admin}`).toString('base64')}` })).status).toBe(401);
    });

    test.each(ROLES.flatMap((role) => [
      { role, form: 'Bearer' as const },
      { role, form: 'Simple' as const },
    ]))('When the $role key is sent as $form, then the route answers as the matrix says', async ({ role, form }) => {
      const { path, body } = await route.request();
      const res = await call(svc.url, route.method, path, body, (form === 'Bearer' ? bearer : simple)(keys[role]));
      const served: readonly Role[] = SERVED[route.role];
      if (served.includes(role)) {
        expect({ status: res.status, body: res.body }).toMatchObject({ status: route.ok });
      } else {
        expect(res.status).toBe(403);
        expect(res.headers.get('content-type')).toMatch(/application\/problem\+json/);
        expect(res.body.detail).toContain(`needs the ${served.length === 1 ? served[0] : `${served.slice(0, -1).join(', ')} or ${served[served.length - 1]}`} role`);
      }
    });
  });

  test('When /openapi.json describes the routes, then each names the permission whose role this matrix expects', async () => {
    const doc = (await call(svc.url, 'GET', '/openapi.json')).body;
    for (const route of ROUTES) {
      const op = doc.paths[route.path.replace(/:(\w+)/g, '{$1}')][route.method.toLowerCase()];
      expect({ route: `${route.method} ${route.path}`, roles: PERMISSIONS[op['x-permission'] as Permission] }).toEqual({ route: `${route.method} ${route.path}`, roles: SERVED[route.role] });
    }
  });

  test.each(['/healthz', '/readyz', '/openapi.json'])('When %s is called without a key, then it is served', async (path) => {
    expect((await call(svc.url, 'GET', path)).status).toBe(200);
  });

  test('When a path no route serves is called without a key, then it is a 401 (nothing is revealed before authentication)', async () => {
    expect((await call(svc.url, 'GET', '/no/such/route')).status).toBe(401);
    expect((await call(svc.url, 'GET', '/no/such/route', undefined, bearer(keys.reader))).status).toBe(404);
  });
});
