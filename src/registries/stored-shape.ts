/**
 * Reading stored entries that may be malformed (written around the API: a hand-edited import, a direct write
 * into the database). Consumers that go over every entry at once (the /metrics series, the resolver's prefix
 * index, the health report) check each with `entryShapeProblem` and skip a bad one, so that one entry never
 * breaks a whole answer; `BadEntries` logs each bad entry once (per revision), not once per request.
 * Only the types those consumers rely on are checked: an entry valid under an older, looser schema still counts.
 */
import type { Logger } from '../logger';

const STATUSES = new Set(['healthy', 'degraded', 'unhealthy', 'unknown']);

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isStrings = (v: unknown): boolean => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** Why `doc` cannot be served as an entry (which field has the wrong type), or undefined. */
export function entryShapeProblem(doc: unknown): string | undefined {
  if (!isObject(doc)) return 'is not an object';
  if (typeof doc._id !== 'string') return '_id is not a string';
  if (typeof doc.container_registry_name !== 'string') return 'container_registry_name is not a string';
  if (doc.container_registry_tags !== undefined && !isStrings(doc.container_registry_tags)) return 'container_registry_tags is not an array of strings';
  if (doc.container_registry_image_prefix !== undefined && typeof doc.container_registry_image_prefix !== 'string') return 'container_registry_image_prefix is not a string';
  const config = doc.container_registry_config;
  if (config !== undefined && !isObject(config)) return 'container_registry_config is not an object';
  if (config?.mirror_of !== undefined && !isStrings(config.mirror_of)) return 'container_registry_config.mirror_of is not an array of strings';
  const health = doc.container_registry_health;
  if (health !== undefined && health !== null && (!isObject(health) || !STATUSES.has(health.status as string))) return 'container_registry_health has no known status';
  const origin = doc.container_registry_origin;
  if (origin !== undefined && (!isObject(origin) || typeof origin.peer !== 'string')) return 'container_registry_origin has no peer';
  return undefined;
}

/** At most this many bad entries are remembered as logged (then the memory starts over). */
const REMEMBERED = 10_000;

/** Logs each bad entry once per consumer and revision. */
export class BadEntries {
  private readonly logged = new Set<string>();

  constructor(private readonly logger: Logger) {}

  /** True when `doc` can be served; else logs it (the first time) and answers false. */
  ok(doc: unknown, consumer: string): boolean {
    const problem = entryShapeProblem(doc);
    if (problem === undefined) return true;
    const d = (isObject(doc) ? doc : {}) as { _id?: unknown; revision?: unknown };
    const key = `${consumer}\u0000${String(d._id)}\u0000${String(d.revision)}`;
    if (!this.logged.has(key)) {
      if (this.logged.size >= REMEMBERED) this.logged.clear();
      this.logged.add(key);
      this.logger.error('a stored entry is malformed and is left out', { consumer, id: String(d._id), revision: d.revision, problem });
    }
    return false;
  }
}
