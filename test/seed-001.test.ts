/**
 * Seed 001 (SPEC section 1): its curl calls, run with the real curl, and its entry.json, exactly as written.
 * The entry points at a private address: the scheduler is off and probes are loopback-only in this test.
 * For the sixth call (GET /check_container_health/<id>) the entry is moved to a real docker-registry on
 * loopback (htpasswd, its credentials sent with the move), so the health check probes a real registry.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { ensureTestDeps, startRegistry, stopAllRegistries, type RunningRegistry } from './support/registries';
import { startTestService, type TestService } from './support/service';

const ENTRY = path.join(__dirname, 'fixtures', 'seed-001-entry.json');
const ID = 'b3c38f52-8f2e-43a3-9aa9-bd9a4c75e509';

/** Runs curl with the seed's arguments (asynchronously: the service runs in this process); returns status and body. */
async function curl(args: string[], cwd = path.dirname(ENTRY)): Promise<{ status: number; body: string; contentType: string }> {
  const { stdout: out } = await promisify(execFile)('curl', ['-sS', '-o', '-', '-w', '\n%{http_code} %{content_type}', ...args], { cwd, encoding: 'utf8' });
  const i = out.lastIndexOf('\n');
  const [status, contentType] = out.slice(i + 1).split(' ');
  return { status: Number(status), body: out.slice(0, i), contentType: contentType ?? '' };
}

describe('Seed 001: the documented curl calls', () => {
  let svc: TestService;
  let HOST: string;
  let registry: RunningRegistry;
  beforeAll(async () => {
    ensureTestDeps();
    svc = await startTestService();
    HOST = svc.url.replace('http://', '');
    registry = await startRegistry({ auth: 'htpasswd' });
  }, 60_000);
  afterAll(async () => {
    await stopAllRegistries();
    await svc.close();
  });

  test('When the seed calls are run in order, then each answers as documented', async () => {
    // POST with -d @entry.json (curl reads the file, the service stores it as given)
    const created = await curl(['-X', 'POST', `http://${HOST}/container_registry`, '-H', 'Content-Type: application/json', '-d', '@seed-001-entry.json']);
    expect(created.status).toBe(201);
    const entry = JSON.parse(created.body);
    expect(entry.container_registry_id).toBe(ID);
    expect(entry.container_registry_name).toBe('internal-ai-registry');
    expect(entry.container_registry_tags).toEqual(['ai', 'training', 'internal', 'fast-pull']);
    expect(entry.container_registry_storage_info).toEqual({ storage_type: 's3', storage_size: -1, memory_size: 8192, registry_type: 'aios' });
    expect(entry.version).toBe(1);

    const got = await curl(['-X', 'GET', `http://${HOST}/container_registry/${ID}`]);
    expect(got.status).toBe(200);
    expect(JSON.parse(got.body)).toEqual(entry);

    const updated = await curl(['-X', 'PUT', `http://${HOST}/container_registry/${ID}`, '-H', 'Content-Type: application/json', '-d', '{"$set": {"container_registry_name": "updated-name"}}']);
    expect(updated.status).toBe(200);
    expect(JSON.parse(updated.body)).toMatchObject({ container_registry_name: 'updated-name', version: 2, container_registry_metadata: entry.container_registry_metadata });

    const found = await curl(['-X', 'POST', `http://${HOST}/container_registries`, '-H', 'Content-Type: application/json', '-d', '{"container_registry_tags": {"$in": ["ai", "internal"]}}']);
    expect(found.status).toBe(200);
    const list = JSON.parse(found.body);
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ container_registry_id: ID, container_registry_name: 'updated-name' });

    // The seed's entry names 10.13.21.22, which no test may reach: as the sixth call needs a registry to
    // answer, the entry is moved to a real one on loopback, with the credentials that registry wants.
    const moved = await curl(['-X', 'PUT', `http://${HOST}/container_registry/${ID}`, '-H', 'Content-Type: application/json', '-d', JSON.stringify({ $set: { container_registry_public_url: registry.url, container_registry_credentials: registry.credentials } })]);
    expect(moved.status).toBe(200);
    expect(JSON.parse(moved.body)).toMatchObject({ container_registry_image_prefix: new URL(registry.url).host, container_registry_credentials: { username: registry.credentials!.username, password_set: true } });
    const health = await curl(['-X', 'GET', `http://${HOST}/check_container_health/${ID}`]);
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ status: 'healthy', http_status: 200, api_version: 'registry/2.0', auth_required: true, auth: { required: true, scheme: 'Basic' }, error: null });
    const stored = JSON.parse((await curl(['-X', 'GET', `http://${HOST}/container_registry/${ID}`])).body);
    expect(stored.container_registry_health).toMatchObject({ status: 'healthy', consecutive_failures: 0 });

    const deleted = await curl(['-X', 'DELETE', `http://${HOST}/container_registry/${ID}`]);
    expect(deleted.status).toBe(204);
    expect(deleted.body).toBe('');

    const gone = await curl(['-X', 'GET', `http://${HOST}/container_registry/${ID}`]);
    expect(gone.status).toBe(404);
    expect(gone.contentType).toContain('application/problem+json');
  });

  test('When the query is sent exactly as printed in the seed (with its stray "]"), then it is a 400 saying the JSON is malformed', async () => {
    const r = await curl(['-X', 'POST', `http://${HOST}/container_registries`, '-H', 'Content-Type: application/json', '-d', '{"container_registry_tags": {"$in": ["ai", "internal"]}]']);
    expect(r.status).toBe(400);
    expect(r.contentType).toContain('application/problem+json');
    const problem = JSON.parse(r.body);
    expect(problem).toMatchObject({ status: 400, title: 'Malformed JSON' });
    expect(problem.detail).toMatch(/not valid JSON/);
  });
});
