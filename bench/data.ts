/**
 * Benchmark data: API entries from a seeded generator, and the same entries shaped exactly as the service
 * stores them (RegistryService.create itself builds each document, over a repository that only captures it).
 */
import { randomBytes } from 'node:crypto';
import { CredentialCipher } from '../src/registries/credentials';
import type { StoredRegistry } from '../src/registries/model';
import type { RegistryRepository } from '../src/registries/repository';
import { RegistryService } from '../src/registries/service';

export const TAGS = ['ai', 'gpu', 'internal', 'public', 'edge', 'prod', 'staging', 'dev', 'eu', 'us', 'asia', 'ml', 'cache', 'mirror', 'ci', 'archive'];
/** The query of the benchmark: a tag `$in` filter, sorted by name, 50 per page. */
export const QUERY = { filter: { container_registry_tags: { $in: ['ai', 'internal'] } }, sortSpec: 'container_registry_name', limit: 50 };

/** mulberry32: a small seeded PRNG, so every run stores the same data. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function apiEntry(i: number, url: string, rand: () => number, prefix = 'bench'): Record<string, unknown> {
  const a = TAGS[Math.floor(rand() * TAGS.length)]!;
  let b = TAGS[Math.floor(rand() * TAGS.length)]!;
  if (b === a) b = TAGS[(TAGS.indexOf(a) + 1) % TAGS.length]!;
  return {
    container_registry_name: `${prefix}-${String(i).padStart(7, '0')}`,
    container_registry_public_url: url,
    container_registry_tags: [a, b],
    container_registry_metadata: { owner: `team-${i % 37}`, region: ['eu-west', 'us-east', 'ap-south'][i % 3] },
    container_registry_config: { auth_required: false, mirror_enabled: i % 5 === 0, storage_backend: 's3' },
    container_registry_storage_info: { storage_type: 's3', storage_size: 1024 * (1 + (i % 50)), memory_size: 512, registry_type: i % 4 === 0 ? 'external' : 'aios' },
  };
}

/** The stored documents of `entries`, built by the service's own create(). */
export async function storedDocs(entries: unknown[]): Promise<StoredRegistry[]> {
  const out: StoredRegistry[] = [];
  const capture = { insert: async (doc: StoredRegistry) => void out.push(doc) } as unknown as RegistryRepository;
  const service = new RegistryService(capture, new CredentialCipher(randomBytes(32)));
  for (const e of entries) await service.create(e);
  return out;
}
