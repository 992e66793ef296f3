/**
 * What the storage crawl's digests cost: N distinct sha256 digests in the crawl's DigestSet against a Map of
 * digest strings to sizes (what the crawl kept before issue 14). Run:
 *   npm run build --silent && tsc -p bench/tsconfig.json && node --expose-gc dist/bench/digest-memory.js [N] [set|map]
 * and compare heapUsed (counted against --max-old-space-size) with arrayBuffers (outside the heap).
 */
import { randomBytes } from 'node:crypto';
import { DigestSet } from '../src/probe/digest-set';

const n = Number(process.argv[2] ?? 1_000_000);
const kind = process.argv[3] === 'map' ? 'map' : 'set';
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const mb = (bytes: number): number => Math.round((bytes / 1048576) * 10) / 10;

// The digests exist before the first reading: what is measured is what the structure itself holds.
const digests = Array.from({ length: n }, () => `sha256:${randomBytes(32).toString('hex')}`);
gc();
const before = process.memoryUsage();
const started = performance.now();
let held: DigestSet | Map<string, number>;
if (kind === 'set') {
  const set = new DigestSet();
  for (const d of digests) set.add(d);
  held = set;
} else {
  const map = new Map<string, number>();
  // Copies of the strings, as the crawl's were (each parsed out of its own manifest).
  for (const d of digests) map.set(JSON.parse(`"${d}"`) as string, 1000);
  held = map;
}
const ms = Math.round(performance.now() - started);
gc();
const after = process.memoryUsage();
process.stdout.write(
  `${JSON.stringify({ kind, digests: held.size, inputs: digests.length, insert_ms: ms, heap_mb: mb(after.heapUsed - before.heapUsed), off_heap_mb: mb(after.arrayBuffers - before.arrayBuffers), rss_mb: mb(after.rss - before.rss) })}\n`,
);
