/**
 * Hostile peers (issue 22 item 2) against the real service process, started as `npm start` starts it (the heap
 * capped by package.json's node flags): a peer that answers a 60 MB page of `{}` (parsed whole, about 22 times
 * its size of heap), and one that sends page after page of 40 new entries each carrying a 1 MB health object.
 * Beside them an honest peer. The process must live, keep following the honest peer, and stay small: the
 * follower reads at most MAX_PAGE_BYTES of an answer and refuses entries over the size bound. The heap
 * (prom-client's nodejs_heap_size_used_bytes) and the peak resident set are sampled and printed.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { productionNodeFlags } from '../../bench/proc';
import { closeAllFakeServers, type FakeServer } from '../support/fake-servers';
import { pageOf, peerEntry, startFatHealthPeer, startFeedPeer, startJunkPagePeer, upsert } from '../support/fake-peers';
import { send, sleep, startServiceProcess, type ServiceProcess } from './support';

const ROOT = path.join(__dirname, '..', '..');
const MB = 1024 * 1024;
/** How long each hostile peer is followed (the 40 x 1 MB peer killed the process after 19 s before the bounds). */
const FOLLOW_MS = 25_000;

let svc: ServiceProcess | undefined;
afterEach(async () => {
  await svc?.stop(5000);
  svc = undefined;
  await closeAllFakeServers();
});

/** Peak resident set of a live process (VmHWM), in MB; 0 once it is gone. */
function peakRssMb(pid: number): number {
  try {
    return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

async function heapUsedMb(s: ServiceProcess): Promise<number | undefined> {
  const m = await send(s.url, 'GET', '/metrics', undefined, {}, 5000);
  const v = /^nodejs_heap_size_used_bytes (\S+)$/m.exec(typeof m.body === 'string' ? m.body : '')?.[1];
  return v === undefined ? undefined : Number(v) / MB;
}

interface Followed {
  maxHeapMb: number;
  peakRssMb: number;
  samples: number;
  requests: number;
}

/** Follows `hostile` (and an honest peer) for FOLLOW_MS, sampling the heap every 250 ms. */
async function follow(hostile: FakeServer, label: string): Promise<Followed> {
  const honestEntry = peerEntry();
  const honest = await startFeedPeer((q) => pageOf([upsert(1, honestEntry)], q));
  svc = await startServiceProcess({ MONGODB_URI: process.env.TEST_MONGODB_URI!, PEERS: `hostile=${hostile.url},honest=${honest.url}` }, { nodeFlags: productionNodeFlags(ROOT) });
  const pid = svc.child.pid!;
  let maxHeapMb = 0;
  let samples = 0;
  const until = Date.now() + FOLLOW_MS;
  while (Date.now() < until && svc.running()) {
    const heap = await heapUsedMb(svc);
    if (heap !== undefined) {
      maxHeapMb = Math.max(maxHeapMb, heap);
      samples++;
    }
    await sleep(250);
  }
  const r = { maxHeapMb: Math.round(maxHeapMb), peakRssMb: Math.round(peakRssMb(pid)), samples, requests: hostile.requests.length };
  process.stderr.write(`[hostile peers] ${label}: ${JSON.stringify(r)} (process ${svc.running() ? 'alive' : 'DEAD'})\n`);
  expect({ running: svc.running(), stderr: svc.stderr().slice(-1500) }).toEqual({ running: true, stderr: expect.any(String) });
  const mirrored = await send(svc.url, 'POST', '/container_registries', { 'container_registry_origin.peer': 'honest' });
  expect((mirrored.body as any[]).map((e) => e.container_registry_id)).toEqual([`honest:${honestEntry.container_registry_id}`]);
  return r;
}

const peers = async (s: ServiceProcess) => Object.fromEntries(((await send(s.url, 'GET', '/peers')).body as any[]).map((p) => [p.name, p]));

test('When a peer answers a 60 MB page of {}, then the follower reads at most 8 MiB of it, never parses it, and the process lives', async () => {
  const junk = await startJunkPagePeer(60 * MB);
  const r = await follow(junk, '60 MB page of {}');
  const status = (await peers(svc!)).hostile;
  expect(status.last_error).toMatch(/over 8388608 bytes/);
  expect(status.entries).toBe(0);
  expect(r.maxHeapMb).toBeLessThan(128);
}, 120_000);

test('When a peer sends page after page of 40 new entries each carrying a 1 MB health object, then every entry is refused for its size, nothing is stored, and the process lives', async () => {
  const fat = await startFatHealthPeer(40, MB);
  const r = await follow(fat, '40 entries x 1 MB health a page');
  const status = (await peers(svc!)).hostile;
  expect(status.entries).toBe(0);
  expect(status.rejected).toBeGreaterThan(0);
  expect(status.last_rejection).toMatch(/bytes of JSON; at most \d+ are taken/);
  expect(r.maxHeapMb).toBeLessThan(128);
  // Nothing of it was stored.
  const all = await send(svc!.url, 'POST', '/container_registries', { 'container_registry_origin.peer': 'hostile' });
  expect(all.body).toEqual([]);
}, 120_000);
