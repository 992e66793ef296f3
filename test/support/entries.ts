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
