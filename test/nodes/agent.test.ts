/**
 * The node agent (registry-db-agent, SPEC 18, issue 17) as a process against the real service: the files it
 * writes are byte for byte what GET /pull-config answers; it rewrites only files whose content changed,
 * atomically and 0644, removes what it wrote when an upstream loses its mirrors and nothing else (a manifest
 * of its own files); it keeps the files while the service is away and catches up after; against a loopback
 * feed it resumes with Last-Event-ID and lists again after a 410 or a new epoch; and it refuses bad
 * arguments, unreadable key files, wrong keys and a registries.conf it did not write with exit status 2.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { bearer, makeKeys } from '../security/keys';
import { closeAllFakeServers, startFakeServer } from '../support/fake-servers';
import { startPeerProxy } from '../support/fake-peers';
import { AGENT, runProgram, startAgent, stopAllAgents, type LogLine } from '../support/node-programs';
import { call, startTestService, type TestService } from '../support/service';

const keys = makeKeys();
const CA = '-----BEGIN CERTIFICATE-----\nMIIBagent\n-----END CERTIFICATE-----\n';
let svc: TestService;
let tmp: string;
let keyFile: string;

beforeAll(async () => {
  svc = await startTestService({ API_KEYS: keys.env });
  tmp = mkdtempSync(path.join(os.tmpdir(), 'registry-db-agent-'));
  keyFile = path.join(tmp, 'puller.key');
  writeFileSync(keyFile, `${keys.puller}\n`);
}, 60_000);

afterAll(async () => {
  await stopAllAgents();
  await closeAllFakeServers();
  await svc.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function mirror(base: string, name: string, upstream: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await call(base, 'POST', '/container_registry', { container_registry_name: name, container_registry_public_url: 'http://127.0.0.1:7999', container_registry_image_prefix: `127.0.0.1:7999/${name}`, container_registry_config: { mirror_of: [upstream] }, ...extra }, bearer(keys.admin));
  expect(res.status).toBe(201);
  return res.body.container_registry_id as string;
}

const route = async (p: string) => (await call(svc.url, 'GET', p, undefined, bearer(keys.reader))).text;
const read = (f: string) => readFileSync(f, 'utf8');
const fresh = (name: string) => {
  const d = path.join(tmp, name);
  mkdirSync(d);
  return { certs: path.join(d, 'certs.d'), conf: path.join(d, 'registries.conf.d', '50-registry-db.conf') };
};
const wrote = (file: string) => (l: LogLine) => l.msg === 'wrote' && l.path === file;

async function eventually(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every file under `dir` (relative paths), temporary files included. */
function tree(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath ?? (d as unknown as { path: string }).path, d.name)))
    .sort();
}

test('When the agent runs --once, then it writes every hosts.toml, CA file and registries.conf byte for byte as the routes answer them, mode 0644, and exits 0', async () => {
  const tls = await mirror(svc.url, 'once-tls', 'registry.example.com', { container_registry_public_url: 'https://127.0.0.1:7998', container_registry_config: { mirror_of: ['registry.example.com'], ca_certificate: CA } });
  await mirror(svc.url, 'once-plain', '127.0.0.1:7101');
  const out = fresh('once');
  const run = await runProgram(AGENT, ['--server', svc.url, '--key-file', keyFile, '--containerd-dir', out.certs, '--registries-conf', out.conf, '--once']);
  expect([run.code, run.stderr]).toEqual([0, '']);
  expect(tree(out.certs)).toEqual(['.registry-db-agent.json', '127.0.0.1:7101/hosts.toml', `registry.example.com/ca-${tls}.crt`, 'registry.example.com/hosts.toml']);
  for (const host of ['127.0.0.1:7101', 'registry.example.com']) {
    expect(read(path.join(out.certs, host, 'hosts.toml'))).toBe(await route(`/pull-config/containerd/${host}/hosts.toml`));
  }
  expect(read(path.join(out.certs, 'registry.example.com', `ca-${tls}.crt`))).toBe(CA);
  expect(read(out.conf)).toBe(await route('/pull-config/registries.conf'));
  for (const f of [out.conf, path.join(out.certs, '127.0.0.1:7101', 'hosts.toml'), path.join(out.certs, 'registry.example.com', `ca-${tls}.crt`)]) {
    expect([f, statSync(f).mode & 0o777]).toEqual([f, 0o644]);
  }
  const manifest = JSON.parse(read(path.join(out.certs, '.registry-db-agent.json')));
  expect(manifest).toMatchObject({ files: ['127.0.0.1:7101/hosts.toml', `registry.example.com/ca-${tls}.crt`, 'registry.example.com/hosts.toml'], dirs: ['127.0.0.1:7101', 'registry.example.com'] });
  const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as LogLine);
  expect(lines.filter((l) => l.msg === 'wrote').map((l) => l.path).sort()).toEqual([out.conf, ...['127.0.0.1:7101/hosts.toml', `registry.example.com/ca-${tls}.crt`, 'registry.example.com/hosts.toml'].map((f) => path.join(out.certs, f))].sort());
});

test('When the agent follows the feed, then it rewrites only files whose content changed, removes what it wrote when an upstream loses its mirrors, and leaves files and directories of others alone', async () => {
  const out = fresh('follow');
  // An operator's own hosts.toml for ghcr.io, and an operator's directory for quay.io with a file of theirs.
  mkdirSync(path.join(out.certs, 'ghcr.io'), { recursive: true });
  writeFileSync(path.join(out.certs, 'ghcr.io', 'hosts.toml'), 'server = "https://ghcr.io"\n');
  mkdirSync(path.join(out.certs, 'quay.io'));
  writeFileSync(path.join(out.certs, 'quay.io', 'extra.crt'), 'operator CA\n');
  await mirror(svc.url, 'follow-base', '127.0.0.1:7111');
  const agent = startAgent(['--server', svc.url, '--key-file', keyFile, '--containerd-dir', out.certs, '--registries-conf', out.conf]);
  await agent.until((l) => l.msg === 'catalog listed');
  const hostsBase = path.join(out.certs, '127.0.0.1:7111', 'hosts.toml');
  await agent.until(wrote(hostsBase));
  await agent.until(wrote(out.conf));
  const before = new Map([hostsBase, out.conf].map((f) => [f, statSync(f)]));

  // A change the files do not show (a tag), then one they do (a new upstream): only the second is written.
  const a = await mirror(svc.url, 'follow-a', '127.0.0.1:7102');
  const from = agent.lines.length;
  expect((await call(svc.url, 'PUT', `/container_registry/${a}`, { $addToSet: { container_registry_tags: 'gpu' } }, bearer(keys.admin))).status).toBe(200);
  const ghcr = await mirror(svc.url, 'follow-ghcr', 'ghcr.io');
  const quay = await mirror(svc.url, 'follow-quay', 'quay.io');
  const hostsQuay = path.join(out.certs, 'quay.io', 'hosts.toml');
  await agent.until(wrote(hostsQuay), 20_000, from);
  await agent.until((l) => l.msg === 'left-alone' && l.path === path.join(out.certs, 'ghcr.io', 'hosts.toml'));
  expect(read(path.join(out.certs, '127.0.0.1:7102', 'hosts.toml'))).toBe(await route('/pull-config/containerd/127.0.0.1:7102/hosts.toml'));
  expect(read(hostsQuay)).toBe(await route('/pull-config/containerd/quay.io/hosts.toml'));
  expect(read(path.join(out.certs, 'ghcr.io', 'hosts.toml'))).toBe('server = "https://ghcr.io"\n');
  const now = statSync(hostsBase);
  expect([now.ino, now.mtimeMs]).toEqual([before.get(hostsBase)!.ino, before.get(hostsBase)!.mtimeMs]);
  expect(agent.lines.slice(from).filter((l) => l.msg === 'wrote' && l.path === hostsBase)).toEqual([]);

  // The upstreams lose their mirrors: the agent's files and directories go, the operator's stay.
  const removedFrom = agent.lines.length;
  for (const id of [a, ghcr, quay]) expect((await call(svc.url, 'DELETE', `/container_registry/${id}`, undefined, bearer(keys.admin))).status).toBe(204);
  await agent.until((l) => l.msg === 'removed-dir' && l.path === path.join(out.certs, '127.0.0.1:7102'), 20_000, removedFrom);
  await agent.until((l) => l.msg === 'removed' && l.path === hostsQuay, 20_000, removedFrom);
  // (the first test's entries may still be in the catalog)
  expect(tree(out.certs).filter((f) => !/^(registry\.example\.com|127\.0\.0\.1:7101)\//.test(f))).toEqual(['.registry-db-agent.json', '127.0.0.1:7111/hosts.toml', 'ghcr.io/hosts.toml', 'quay.io/extra.crt']);
  const expected = await route('/pull-config/registries.conf');
  await eventually('registries.conf is rewritten', () => read(out.conf) === expected);
  // No temporary file was left anywhere.
  expect(tree(path.dirname(out.conf))).toEqual(['.50-registry-db.conf.registry-db-agent.json', '50-registry-db.conf']);
  expect(await agent.stop()).toBe(0);
});

test('When the service goes away, then the agent keeps its files and retries; when it is back (another process, same catalog), the agent catches up', async () => {
  const proxy = await startPeerProxy(svc.url);
  const out = fresh('outage');
  await mirror(svc.url, 'outage-a', '127.0.0.1:7201');
  const agent = startAgent(['--server', proxy.url, '--key-file', keyFile, '--containerd-dir', out.certs, '--retry-max', '1']);
  const hostsA = path.join(out.certs, '127.0.0.1:7201', 'hosts.toml');
  await agent.until(wrote(hostsA));
  const text = read(hostsA);
  const dbName = svc.db.databaseName;
  await svc.close({ keepDatabase: true });
  await agent.until((l) => l.msg === 'change feed unreachable; keeping the files as they are and retrying');
  expect(read(hostsA)).toBe(text);
  svc = await startTestService({ API_KEYS: keys.env }, { dbName });
  await mirror(svc.url, 'outage-b', '127.0.0.1:7202');
  proxy.retarget(svc.url);
  const hostsB = path.join(out.certs, '127.0.0.1:7202', 'hosts.toml');
  await agent.until(wrote(hostsB), 30_000);
  expect(read(hostsB)).toBe(await route('/pull-config/containerd/127.0.0.1:7202/hosts.toml'));
  expect(read(hostsA)).toBe(text);
  expect(await agent.stop()).toBe(0);
}, 90_000);

describe('Against a loopback change feed', () => {
  const seen: Array<{ lastEventId: string | undefined }> = [];
  type Script = (res: ServerResponse) => void;
  const sse = (res: ServerResponse, epoch: string, events: string[], end: boolean) => {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'X-Catalog-Epoch': epoch });
    res.write(events.join(''));
    if (end) res.end();
  };
  const upsert = (revision: number, id: string, upstream: string) =>
    `id: ${revision}\nevent: upsert\ndata: ${JSON.stringify({ revision, type: 'upsert', container_registry_id: id, entry: { container_registry_id: id, container_registry_name: id, container_registry_public_url: 'http://127.0.0.1:7999', container_registry_image_prefix: `127.0.0.1:7999/${id}`, container_registry_config: { mirror_of: [upstream] } } })}\n\n`;
  const bookmark = (revision: number) => `id: ${revision}\nevent: bookmark\ndata: {"revision":${revision}}\n\n`;

  test('When the stream drops, then the agent resumes with Last-Event-ID; after a 410 or a new epoch it lists again from the start and rewrites the files from the new listing', async () => {
    const scripts: Script[] = [
      (res) => sse(res, 'e1', [upsert(1, 'm1', '127.0.0.1:7301'), upsert(2, 'm2', '127.0.0.1:7302'), bookmark(2)], true),
      (res) => res.writeHead(410, { 'Content-Type': 'application/problem+json' }).end('{"status":410,"detail":"since is too old"}'),
      (res) => sse(res, 'e1', [upsert(5, 'm2', '127.0.0.1:7302'), bookmark(5)], true),
      // A restored catalog: its events must not be applied on top of the old state.
      (res) => sse(res, 'e2', [upsert(9, 'stale', '127.0.0.1:7309'), bookmark(9)], true),
      (res) => sse(res, 'e2', [upsert(3, 'm3', '127.0.0.1:7303'), bookmark(3)], false),
    ];
    const feed = await startFakeServer((req, res) => {
      seen.push({ lastEventId: req.headers['last-event-id'] as string | undefined });
      (scripts[seen.length - 1] ?? ((r: ServerResponse) => r.writeHead(503).end()))(res);
    });
    const out = fresh('scripted');
    const agent = startAgent(['--server', feed.url, '--containerd-dir', out.certs, '--retry-max', '1']);
    await agent.until((l) => l.msg === 'removed-dir' && l.path === path.join(out.certs, '127.0.0.1:7302'), 30_000);
    expect(seen.map((s) => s.lastEventId)).toEqual([undefined, '2', undefined, '5', undefined]);
    expect(tree(out.certs)).toEqual(['.registry-db-agent.json', '127.0.0.1:7303/hosts.toml']);
    expect(agent.lines.filter((l) => l.msg === 'listing the catalog again').map((l) => String(l.reason))).toEqual([expect.stringContaining('410'), expect.stringContaining('epoch')]);
    // 7301 went with the relist after the 410; 7309 (the restored catalog's first answer) was never written.
    expect(agent.lines.some((l) => String(l.path ?? '').includes('7309'))).toBe(false);
    expect(agent.lines.some((l) => l.msg === 'removed-dir' && l.path === path.join(out.certs, '127.0.0.1:7301'))).toBe(true);
    expect(await agent.stop()).toBe(0);
  }, 60_000);
});

describe('Refusals', () => {
  test.each([
    ['an unknown flag', ['--server', 'http://127.0.0.1:9', '--containerd-dir', '/tmp/x', '--bogus'], /Unknown option '--bogus'/],
    ['no --server', ['--containerd-dir', '/tmp/x'], /--server URL is required/],
    ['a --server that is no URL', ['--server', 'registry-db', '--containerd-dir', '/tmp/x'], /is not a URL/],
    ['a --server with a key in it', ['--server', 'http://user:pw@127.0.0.1:9', '--containerd-dir', '/tmp/x'], /no user-info/],
    ['nothing to write', ['--server', 'http://127.0.0.1:9'], /nothing to write/],
    ['a key file that cannot be read', ['--server', 'http://127.0.0.1:9', '--containerd-dir', '/tmp/x', '--key-file', '/nonexistent/key'], /--key-file \/nonexistent\/key: cannot read it \(ENOENT\)/],
    ['--retry-max out of range', ['--server', 'http://127.0.0.1:9', '--containerd-dir', '/tmp/x', '--retry-max', '0'], /--retry-max/],
  ])('When the agent is given %s, then it says so and exits 2', async (_what, args, message) => {
    const run = await runProgram(AGENT, args);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stderr).toContain('usage: registry-db-agent');
  });

  test('When the key is wrong, then the agent says the service refused it and exits 2, writing nothing', async () => {
    const wrong = path.join(tmp, 'wrong.key');
    writeFileSync(wrong, keys.wrong);
    const out = fresh('wrong-key');
    const run = await runProgram(AGENT, ['--server', svc.url, '--key-file', wrong, '--containerd-dir', out.certs]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/the service refused the key \(401\).*check --key-file/);
    expect(run.stderr).not.toContain(keys.wrong);
    expect(existsSync(out.certs)).toBe(false);
  });

  test('When --registries-conf names a file the agent did not write, then it exits 2 and leaves the file as it was', async () => {
    const conf = path.join(tmp, 'registries.conf');
    writeFileSync(conf, 'unqualified-search-registries = ["docker.io"]\n');
    const run = await runProgram(AGENT, ['--server', svc.url, '--key-file', keyFile, '--registries-conf', conf]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/the file exists and this agent did not write it/);
    expect(read(conf)).toBe('unqualified-search-registries = ["docker.io"]\n');
  });

  test('When --once cannot reach the service, then it says so and exits 1', async () => {
    const run = await runProgram(AGENT, ['--server', 'http://127.0.0.1:9', '--containerd-dir', path.join(tmp, 'unreachable'), '--once']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/registry-db-agent: /);
  });
});
