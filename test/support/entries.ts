/** Valid registry entries for tests; every URL is on loopback. */
import { randomUUID } from 'node:crypto';

export function entry(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const n = randomUUID().slice(0, 8);
  return {
    container_registry_name: `registry-${n}`,
    container_registry_public_url: 'http://127.0.0.1:5999',
    container_registry_tags: ['test'],
    container_registry_metadata: { owner: 'tests' },
    ...overrides,
  };
}

/**
 * Metadata of about `bytes` bytes of JSON within the entry schema's bounds (64 keys per object, strings of
 * at most 4,096 characters); `salt` makes each version differ. 230,000 fits the default 256 KiB body limit.
 */
export function bigMetadata(bytes: number, salt = ''): Record<string, string> {
  const out: Record<string, string> = {};
  const keys = Math.min(64, Math.ceil(bytes / 4000));
  for (let i = 0; i < keys; i++) out[`k${i}`] = `${salt}:${i}:`.padEnd(Math.min(4000, Math.ceil(bytes / keys)), 'x');
  return out;
}
