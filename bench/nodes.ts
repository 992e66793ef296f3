/**
 * Nodes (SPEC 18, issue 17), `npm run bench -- --only=nodes`:
 * - rendering at 10,000 entries (the resolution benchmark's catalog: 100 mirrors of 20 upstreams among
 *   them): registries.conf and docker.io's hosts.toml, in this process (src/nodes alone) and over HTTP from
 *   the service (GET /pull-config/..., one request at a time), p50 / p99 per request;
 * - agent lag: the built registry-db-agent follows the service; a mirror's registry flips between answering
 *   and failing, an on-demand probe (GET /check_container_health/:id) records each flip, and the lag is from
 *   the probe's answer (the status is stored and acknowledged) to the moment the agent's hosts.toml says
 *   so (the file polled every millisecond). Target: p99 under 1 s.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FeedCatalog, parseUpstream, type FeedChange } from '../src/nodes';
import type { StoredRegistry } from '../src/registries/model';
import { storedDocs } from './data';
import { percentile } from './feed';
import { DIST, startChild, type Child } from './proc';
import { catalog } from './resolve';

const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;
const ENTRIES = 10_000;
const STATUSES = ['healthy', 'healthy', 'degraded', 'unknown', 'unhealthy'] as const;

export interface NodesDeps {
  uri: string;
  startService: (uri: string, dbName: string, extra?: Record<string, string>) => Promise<Child>;
  insert: (docs: StoredRegistry[]) => Promise<number>;
  readerKey: string;
  writerKey: string;
  log: (m: string) => void;
  quick: boolean;
}

function stats(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  return { runs: s.length, p50_ms: round(percentile(s, 50), 3), p99_ms: round(percentile(s, 99), 3), max_ms: round(s[s.length - 1]!, 3) };
}

function timed(n: number, f: () => unknown): number[] {
  for (let i = 0; i < 20; i++) f();
  return Array.from({ length: n }, () => {
    const t0 = performance.now();
    f();
    return performance.now() - t0;
  });
}

/** src/nodes alone, at 10,000 entries. */
function inProcess(log: NodesDeps['log']) {
  const c = new FeedCatalog();
  catalog(ENTRIES).forEach((e, i) => {
    const id = `id-${i}`;
    c.apply({ type: 'upsert', container_registry_id: id, entry: { ...e, container_registry_id: id, container_registry_health: { status: STATUSES[i % STATUSES.length]! } } } as FeedChange);
  });
  const hub = parseUpstream('docker.io', { host: true });
  if (!hub.ok) throw new Error(hub.reason);
  const figures = {
    entries: ENTRIES,
    registries_conf: { bytes: c.config.registriesConf().length, ...stats(timed(500, () => c.config.registriesConf())) },
    hosts_toml_docker_io: { bytes: c.config.hostsToml(hub.prefix)!.length, ...stats(timed(500, () => c.config.hostsToml(hub.prefix))) },
    containerd_tree: { files: c.config.containerdTree().size, ...stats(timed(100, () => c.config.containerdTree())) },
  };
  log(`nodes in process at ${ENTRIES} entries: registries.conf p50 ${figures.registries_conf.p50_ms} ms, docker.io hosts.toml p50 ${figures.hosts_toml_docker_io.p50_ms} ms, whole certs.d tree p50 ${figures.containerd_tree.p50_ms} ms`);
  return figures;
}

async function overHttp(port: number, auth: Record<string, string>, runs: number) {
  const get = async (p: string) => {
    const t0 = performance.now();
    const res = await fetch(`http://127.0.0.1:${port}${p}`, { headers: auth });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`GET ${p} answered ${res.status}: ${text.slice(0, 200)}`);
    return performance.now() - t0;
  };
  const out: Record<string, unknown> = {};
  for (const p of ['/pull-config/registries.conf', '/pull-config/containerd/docker.io/hosts.toml']) {
    for (let i = 0; i < 20; i++) await get(p);
    const ms: number[] = [];
    for (let i = 0; i < runs; i++) ms.push(await get(p));
    out[p] = stats(ms);
  }
  return out;
}

/** A registry that answers /v2/ or fails, as told. */
async function flipRegistry() {
  let up = true;
  const server = createServer((req, res) => {
    if (!up) return void res.writeHead(500).end('down');
    res.writeHead(200, { 'Content-Type': 'application/json', 'Docker-Distribution-API-Version': 'registry/2.0' }).end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, set: (v: boolean) => void (up = v), close: () => new Promise<void>((r) => server.close(() => r())) };
}

async function agentLag(deps: NodesDeps, service: Child, tmp: string, flips: number) {
  const writer = { Authorization: `Bearer ${deps.writerKey}`, 'Content-Type': 'application/json' };
  const reg = await flipRegistry();
  const created = await fetch(`http://127.0.0.1:${service.port}/container_registry`, {
    method: 'POST',
    headers: writer,
    body: JSON.stringify({ container_registry_name: 'bench-lag-mirror', container_registry_public_url: `http://127.0.0.1:${reg.port}`, container_registry_config: { mirror_of: ['lag.example.com'] } }),
  });
  if (created.status !== 201) throw new Error(`creating the mirror answered ${created.status}`);
  const id = ((await created.json()) as { container_registry_id: string }).container_registry_id;
  const keyFile = path.join(tmp, 'key');
  writeFileSync(keyFile, deps.readerKey);
  const certs = path.join(tmp, 'certs.d');
  const agent = await startChild([path.join(DIST, 'src', 'bin', 'agent.js'), '--server', `http://127.0.0.1:${service.port}`, '--key-file', keyFile, '--containerd-dir', certs], {}, (l) => (l.includes('"catalog listed"') ? 1 : undefined), 'agent', 120_000);
  const file = path.join(certs, 'lag.example.com', 'hosts.toml');
  const line = `[host."http://127.0.0.1:${reg.port}"]`;
  const says = (listed: boolean) => {
    try {
      return readFileSync(file, 'utf8').includes(line) === listed;
    } catch {
      return false;
    }
  };
  const until = async (listed: boolean) => {
    const t0 = performance.now();
    while (!says(listed)) {
      if (performance.now() - t0 > 10_000) throw new Error(`the agent's ${file} did not ${listed ? 'list' : 'drop'} the mirror within 10 s`);
      await sleep(1);
    }
    return performance.now();
  };
  try {
    await until(true);
    const lags: number[] = [];
    for (let i = 0; i < flips; i++) {
      const up = i % 2 === 1;
      reg.set(up);
      const res = await fetch(`http://127.0.0.1:${service.port}/check_container_health/${id}`, { headers: writer });
      const status = ((await res.json()) as { status: string }).status;
      const acked = performance.now();
      if (status !== (up ? 'healthy' : 'unhealthy')) throw new Error(`the probe answered ${status}`);
      lags.push((await until(up)) - acked);
      await sleep(20 + Math.random() * 40);
    }
    const figures = { flips, ...stats(lags) };
    deps.log(`agent lag, status change → hosts.toml rewritten, ${flips} flips: p50 ${figures.p50_ms} ms, p99 ${figures.p99_ms} ms, max ${figures.max_ms} ms`);
    return figures;
  } finally {
    await agent.stop();
    await reg.close();
  }
}

export async function nodesPhase(deps: NodesDeps) {
  const in_process = inProcess(deps.log);
  const docs = await storedDocs(catalog(ENTRIES));
  await deps.insert(docs);
  const service = await deps.startService(deps.uri, 'bench_nodes', { PROBE_RATE_LIMIT_MAX: '100000000' });
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'registry-db-bench-nodes-'));
  try {
    await service.waitForLine('change feed: view ready', 120_000);
    const http = await overHttp(service.port, { Authorization: `Bearer ${deps.readerKey}` }, deps.quick ? 100 : 300);
    deps.log(`nodes over HTTP at ${ENTRIES} entries: ${JSON.stringify(http)}`);
    const lag = await agentLag(deps, service, tmp, deps.quick ? 40 : 200);
    return { in_process, http, agent_lag: lag };
  } finally {
    await service.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}
