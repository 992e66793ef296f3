/**
 * A seeded catalog of stored documents for the view's differential test: the shapes the service stores, with
 * the variety a filter can meet (free-form metadata of mixed types, arrays, nested objects and arrays of
 * objects, nulls, missing fields and objects (no nested arrays: FerretDB v1 cannot store them), duplicate sort keys, health statuses of other types).
 */
import { prng } from '../../bench/data';
import type { StoredRegistry } from '../../src/registries/model';

/** Strings documents and filters share: case, prefixes, non-ASCII, astral, newline, digits-as-text. */
export const FILTER_STRINGS = ['', 'a', 'a'.repeat(29), 'A', 'ab', 'abc', 'b', 'B', 'eu-west', 'us-east', 'team-1', 'team-10', 'team-2', 'healthy', 'unknown', 'degraded', 'é', 'e', 'Z', 'z', '10', '9', 'x y', 'line\nbreak', '😀', '\uffff', 's3', 'fs', 'test'];
export const NUMBERS = [0, 1, -1, 2, 1.5, 10, 100, -0.5, 1024, 1e6];
export const REGEXES = ['^a', 'a', 'A', '^team-1', '\\d', '^$', 'e$', '.', '^.$', 'west|east', '[a-c]+', 'é', 'x y', 'x # comment\n y', '^line$', 'break$', '^[^a-z]', 'E', '\\s', '^😀$', 'team-\\d{2}'];

export function catalogDocs(n: number, seed: number): StoredRegistry[] {
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const chance = (p: number) => rand() < p;
  const scalar = (): unknown => (chance(0.45) ? pick(FILTER_STRINGS) : chance(0.6) ? pick(NUMBERS) : chance(0.6) ? chance(0.5) : null);
  const value = (): unknown => {
    const r = rand();
    if (r < 0.65) return scalar();
    if (r < 0.8) return Array.from({ length: Math.floor(rand() * 4) }, scalar);
    if (r < 0.92) return chance(0.5) ? { x: 'a', y: 1 } : { y: 1, x: 'a' };
    return { x: scalar() };
  };
  const some = (o: Record<string, () => unknown>, p: number): Record<string, unknown> =>
    Object.fromEntries(Object.entries(o).flatMap(([k, make]) => (chance(p) ? [[k, make()]] : [])));
  const prefixes = ['alpha', 'Alpha', 'beta', 'é', 'Z', '😀', 'team', '\uffff', 'zeta'];
  const stamps = Array.from({ length: 12 }, (_, i) => `2026-12-0${1 + (i % 3)}T1${i % 10}:00:00.000Z`);
  const docs: StoredRegistry[] = [];
  for (let i = 0; i < n; i++) {
    const doc: Record<string, unknown> = {
      _id: i % 17 === 0 ? `${pick(prefixes)}-${i}` : Array.from({ length: 8 }, () => pick([...'0123456789abcdef'])).join(''),
      container_registry_name: `${pick(prefixes)}-${String(i % 50).padStart(2, '0')}-${i}`,
      container_registry_public_url: pick(['http://127.0.0.1:5000', 'https://registry.example', 'http://[::1]:5001']),
    };
    if (!chance(0.05)) doc.container_registry_tags = Array.from(new Set(Array.from({ length: Math.floor(rand() * 4) }, () => (chance(0.9) ? pick(FILTER_STRINGS) : pick(NUMBERS)))));
    doc.container_registry_image_prefix = pick(['127.0.0.1:5000', 'registry.example', '[::1]:5001/x']);
    if (!chance(0.1)) {
      doc.container_registry_metadata = some(
        {
          owner: () => (chance(0.7) ? `team-${Math.floor(rand() * 12)}` : value()),
          region: () => (chance(0.7) ? pick(['eu-west', 'us-east', 'é']) : value()),
          n: value,
          flag: () => (chance(0.7) ? chance(0.5) : value()),
          list: () => (chance(0.5) ? Array.from({ length: Math.floor(rand() * 3) }, () => (chance(0.8) ? scalar() : { x: scalar() })) : Array.from({ length: 1 + Math.floor(rand() * 2) }, () => some({ k: scalar, v: scalar }, 0.8))),
          nested: () => (chance(0.8) ? some({ x: value, y: scalar, deep: () => some({ z: value }, 0.8) }, 0.7) : value()),
        },
        0.6,
      );
    }
    if (!chance(0.1)) {
      doc.container_registry_config = some(
        {
          auth_required: () => chance(0.5),
          mirror_enabled: () => (chance(0.9) ? chance(0.5) : scalar()),
          storage_backend: () => pick(['s3', 'fs', 'S3', 'gcs']),
          max_layer_size_mb: () => (chance(0.8) ? pick(NUMBERS) : scalar()),
          extra: value,
        },
        0.6,
      );
    }
    if (!chance(0.1)) {
      doc.container_registry_storage_info = some(
        {
          storage_type: () => pick(['s3', 'object-store', 'fs', 'unknown']),
          storage_size: () => pick([-1, 0, 512, 1024, 2048, 1.5]),
          memory_size: () => pick([-1, 512]),
          registry_type: () => pick(['aios', 'external']),
          observed: () => some({ x: value }, 0.7),
        },
        0.7,
      );
    }
    if (!chance(0.05)) {
      doc.container_registry_health = some(
        {
          status: () => (chance(0.9) ? pick(['healthy', 'degraded', 'unhealthy', 'unknown']) : pick([null, 3, 'Healthy', ''])),
          latency_ms: () => pick([0, 5, 12.5, 100, 1000]),
          consecutive_failures: () => pick([0, 1, 2]),
          error: () => pick([null, 'timeout', 'tls_error']),
          auth: () => (chance(0.7) ? { required: chance(0.5), scheme: pick(['bearer', 'basic', null]) } : null),
        },
        0.8,
      );
    }
    doc.created_at = pick(stamps);
    doc.updated_at = pick(stamps);
    doc.version = chance(0.95) ? 1 + Math.floor(rand() * 4) : 2.5;
    docs.push(doc as unknown as StoredRegistry);
  }
  return docs;
}
