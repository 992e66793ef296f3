/**
 * Federation, the pure part (SPEC 15): how a peer's change page is read and checked, how its entries are
 * keyed and stored here. No I/O, so every rule is unit-tested (test/federation/).
 *
 * Keying: a mirrored entry's id is `<peer>:<peer's id>`. Local ids are UUIDs (the schema's `format: uuid`,
 * no colon) and peer names are lowercase letters, digits and dashes, so a mirrored id never collides with a
 * local one nor with another peer's; and the same entry mirrored by two clusters keeps a recognisable id.
 */
import type { ChangePage, ContainerRegistry } from '../generated';
import { InputError } from '../errors';
import { readOnlyPaths, validateChangePage, validateEntry } from '../schemas';
import type { StoredRegistry } from '../registries/model';

export type Origin = NonNullable<ContainerRegistry['container_registry_origin']>;

export function mirrorId(peer: string, id: string): string {
  return `${peer}:${id}`;
}

/** Why the peer's answer cannot be used (kept as the peer's last error). */
export class PeerAnswerError extends Error {
  override name = 'PeerAnswerError';
}

/** The page a peer answered, checked against change_page.schema.json (garbage is a PeerAnswerError). */
export function parseChangePage(body: Buffer | string): ChangePage {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString());
  } catch {
    throw new PeerAnswerError('the peer answered a body that is not JSON');
  }
  try {
    return validateChangePage(parsed);
  } catch (e) {
    if (e instanceof InputError) throw new PeerAnswerError(`the peer answered something that is not a change page: ${e.message}`);
    throw e;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Service-owned fields of the peer's entry that are kept as the peer states them. */
const KEPT_READ_ONLY = ['container_registry_health', 'created_at', 'updated_at', 'version'] as const;

/**
 * The document stored here for the peer's entry `entry` (as its API returns it): the client-writable part
 * must pass this catalog's own validation (a peer cannot store what a client could not); the peer's health,
 * times and version are kept; the credentials (masked by the peer: no password) and the peer's revision are
 * not. Throws PeerAnswerError naming what is wrong.
 */
export function storedFromPeer(peer: string, entry: Record<string, unknown>, origin: Origin): StoredRegistry {
  const id = entry.container_registry_id;
  if (typeof id !== 'string' || id === '' || id.length > 200) throw new PeerAnswerError('an entry of the peer has no usable container_registry_id');
  const logical: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(entry)) {
    if (k === 'container_registry_id' || k === 'container_registry_credentials' || k.startsWith('_') || readOnlyPaths.includes(k)) continue;
    logical[k] = structuredClone(v);
  }
  const storage = logical.container_registry_storage_info;
  const observed = isObject(storage) ? storage.observed : undefined;
  if (isObject(storage)) delete storage.observed;
  try {
    validateEntry(logical);
  } catch (e) {
    if (e instanceof InputError) throw new PeerAnswerError(`entry ${id} of the peer is not valid here: ${e.message}`);
    throw e;
  }
  const doc: Record<string, unknown> = { _id: mirrorId(peer, id), ...logical };
  if (isObject(observed) && isObject(storage)) storage.observed = observed;
  for (const k of KEPT_READ_ONLY) if (entry[k] !== undefined) doc[k] = structuredClone(entry[k]);
  if (!isObject(doc.container_registry_health)) doc.container_registry_health = { status: 'unknown', consecutive_failures: 0 };
  if (typeof doc.version !== 'number') doc.version = 1;
  const now = new Date().toISOString();
  if (typeof doc.created_at !== 'string') doc.created_at = now;
  if (typeof doc.updated_at !== 'string') doc.updated_at = now;
  doc.container_registry_origin = origin;
  return doc as unknown as StoredRegistry;
}

/**
 * Whether the peer asks for a relist: a 410 (our position is older than what it keeps), or a 400 on
 * `since` (our position is beyond its latest revision: it went backwards, e.g. restored from a backup).
 */
export function needsRelist(status: number, body: Buffer | string): boolean {
  if (status === 410) return true;
  if (status !== 400) return false;
  try {
    const problem = JSON.parse(body.toString()) as { errors?: Array<{ path?: unknown }> };
    return Array.isArray(problem.errors) && problem.errors.some((e) => e?.path === 'since');
  } catch {
    return false;
  }
}
