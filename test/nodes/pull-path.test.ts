/**
 * The catalog on the pull path, with real clients (SPEC 18, issue 17): Debian's skopeo (through the
 * containers-registries.conf the agent writes) and Debian's containerd (`ctr images pull --hosts-dir` the
 * agent's certs.d, against a containerd daemon the test starts in a temporary root) pull an image by its
 * upstream name while the upstream registry is stopped: first from the first mirror; then that mirror is
 * stopped, a probe marks it unhealthy, the agent rewrites the file, and the next pull comes from the second
 * mirror without trying the dead one. Every registry is a docker-registry on 127.0.0.1: the upstream's name
 * is 127.0.0.1:PORT, so a client that falls back to the upstream stays on loopback.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { skopeo } from '../support/clients';
import { startContainerd, type Containerd } from '../support/containerd';
import { startAgent, stopAllAgents, type RunningAgent } from '../support/node-programs';
import { content, ensureTestDeps, pushImage, startRegistry, stopAllRegistries, type Content, type RunningRegistry } from '../support/registries';
import { call, startTestService, type TestService } from '../support/service';

let svc: TestService;
let tmp: string;
let containerd: Containerd;

beforeAll(async () => {
  ensureTestDeps();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'registry-db-pull-path-'));
  svc = await startTestService();
  containerd = await startContainerd(path.join(tmp, 'containerd'));
}, 120_000);

afterAll(async () => {
  await stopAllAgents();
  await containerd?.stop();
  await stopAllRegistries();
  await svc?.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** A real image: one gzipped tar layer holding `file`, its config naming the layer's diff id and this machine's platform. */
function image(file: string): { config: Content; layers: Content[] } {
  const dir = mkdtempSync(path.join(tmp, 'layer-'));
  writeFileSync(path.join(dir, file), `${file}\n`);
  const tar = execFileSync('tar', ['-C', dir, '-cf', '-', file]);
  const diffId = `sha256:${createHash('sha256').update(tar).digest('hex')}`;
  const architecture = process.arch === 'x64' ? 'amd64' : process.arch;
  return { config: content(JSON.stringify({ architecture, os: 'linux', rootfs: { type: 'layers', diff_ids: [diffId] }, config: {} })), layers: [content(gzipSync(tar))] };
}

interface Scene {
  upstream: string;
  ref: string;
  first: RunningRegistry;
  second: RunningRegistry;
  manifestDigest: string;
  agent: RunningAgent;
  out: { certs: string; conf: string };
  firstId: string;
  img: { config: Content; layers: Content[] };
}

/**
 * An upstream registry with the image, stopped; two mirrors (entries `a-…` and `b-…`, both probed healthy),
 * only the first holding the image; an agent writing both files.
 */
async function scene(name: string): Promise<Scene> {
  const img = image(`${name}.txt`);
  const up = await startRegistry();
  const pushed = await pushImage(up, 'team/app', '1', img);
  const upstream = `127.0.0.1:${up.port}`;
  await up.stop();
  const first = await startRegistry();
  const second = await startRegistry();
  await pushImage(first, 'team/app', '1', img);
  const ids: string[] = [];
  for (const [label, reg] of [['a', first], ['b', second]] as const) {
    const res = await call(svc.url, 'POST', '/container_registry', { container_registry_name: `${label}-${name}-mirror`, container_registry_public_url: reg.url, container_registry_config: { mirror_of: [upstream] } });
    expect(res.status).toBe(201);
    ids.push(res.body.container_registry_id);
    expect((await call(svc.url, 'GET', `/check_container_health/${res.body.container_registry_id}`)).body.status).toBe('healthy');
  }
  const home = path.join(tmp, `scene-${name}`);
  const out = { certs: path.join(home, 'certs.d'), conf: path.join(home, 'registries.conf.d', '50-registry-db.conf') };
  mkdirSync(home);
  const agent = startAgent(['--server', svc.url, '--containerd-dir', out.certs, '--registries-conf', out.conf]);
  const s: Scene = { upstream, ref: `${upstream}/team/app:1`, first, second, manifestDigest: pushed.manifest.digest, agent, out, firstId: ids[0]!, img };
  await fileSays(s, [first, second]);
  return s;
}

/** Waits until the agent's files name exactly `mirrors`, in this order (and are what the routes answer). */
async function fileSays(s: Scene, mirrors: RunningRegistry[]): Promise<void> {
  const hosts = path.join(s.out.certs, s.upstream, 'hosts.toml');
  const wanted = mirrors.map((m) => m.port);
  const ports = (text: string, re: RegExp) => [...text.matchAll(re)].map((m) => Number(m[1]));
  const deadline = Date.now() + 20_000;
  let seen = '';
  for (;;) {
    let ok = false;
    try {
      const h = readFileSync(hosts, 'utf8');
      const c = readFileSync(s.out.conf, 'utf8');
      seen = `${h}\n${c}`;
      // This upstream's [[registry]] (the catalog may mirror others too).
      const section = c.slice(c.indexOf(`prefix = "${s.upstream}"`)).split('\n[[registry]]\n')[0]!;
      ok = JSON.stringify(ports(h, /^\[host\."http:\/\/127\.0\.0\.1:(\d+)"\]$/gm)) === JSON.stringify(wanted) && JSON.stringify(ports(section, /^\[\[registry\.mirror\]\]\nlocation = "127\.0\.0\.1:(\d+)"$/gm)) === JSON.stringify(wanted);
      if (ok) {
        expect(h).toBe((await call(svc.url, 'GET', `/pull-config/containerd/${s.upstream}/hosts.toml`)).text);
        expect(c).toBe((await call(svc.url, 'GET', '/pull-config/registries.conf')).text);
        return;
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (Date.now() > deadline) throw new Error(`the agent's files do not name mirrors ${wanted.join(', ')}:\n${seen}\n${s.agent.stdout()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The first mirror goes down, a probe sees it, the second mirror gets the image. */
async function firstMirrorDies(s: Scene): Promise<void> {
  await pushImage(s.second, 'team/app', '1', s.img);
  await s.first.stop();
  expect((await call(svc.url, 'GET', `/check_container_health/${s.firstId}`)).body.status).toBe('unhealthy');
  await fileSays(s, [s.second]);
}

const port = (r: RunningRegistry) => `127.0.0.1:${r.port}`;

test('When skopeo copies an image by its upstream name through the agent’s registries.conf, then it comes from the first mirror; after that mirror dies and is probed unhealthy, from the second, the dead one not even tried', async () => {
  const s = await scene('skopeo');
  mkdirSync(path.join(tmp, 'skopeo-home'), { recursive: true });
  const client = skopeo(path.join(tmp, 'skopeo-home'));
  const first = await client.copy(s.ref, path.join(tmp, 'copy-1'), { registriesConf: s.out.conf });
  const manifest = readFileSync(path.join(tmp, 'copy-1', 'manifest.json'));
  expect(`sha256:${createHash('sha256').update(manifest).digest('hex')}`).toBe(s.manifestDigest);
  expect(first).toContain(port(s.first));

  await firstMirrorDies(s);
  const second = await client.copy(s.ref, path.join(tmp, 'copy-2'), { registriesConf: s.out.conf });
  expect(second).toContain(port(s.second));
  expect(second).not.toContain(port(s.first));
  expect(readFileSync(path.join(tmp, 'copy-2', 'manifest.json')).equals(manifest)).toBe(true);
}, 180_000);

test('When containerd pulls an image by its upstream name through the agent’s hosts.toml, then it comes from the first mirror; after that mirror dies and is probed unhealthy, from the second, the dead one not even tried', async () => {
  const s = await scene('containerd');
  const first = await containerd.pull(s.ref, s.out.certs, 'first');
  expect(first).toContain(port(s.first));
  expect(first).toContain(s.manifestDigest);

  await firstMirrorDies(s);
  // Another namespace: nothing of the first pull is reused, every blob is fetched again.
  const second = await containerd.pull(s.ref, s.out.certs, 'second');
  expect(second).toContain(port(s.second));
  expect(second).not.toContain(port(s.first));
  expect(second).toContain(s.manifestDigest);
}, 180_000);
