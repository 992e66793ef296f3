/**
 * Federation, the pure part (SPEC 15): how a peer's change page is read and checked, how its entries are
 * keyed and stored here. No I/O, so every rule is unit-tested (test/federation/).
 *
 * Keying: a mirrored entry's id is `<peer>:<peer's id>`. The peer's id must be a UUID (the ids of its local
 * entries, the only ones it sends with origin=local), and peer names are lowercase letters, digits and
 * dashes, so a mirrored id never collides with a local one nor with another peer's; and the same entry
 * mirrored by two clusters keeps a recognisable id.
 *
 * A peer is untrusted input. Its answer is bounded before it is parsed (bytes, JSON values, nesting: a page
 * of `{}` costs the heap about 22 times its bytes), and each entry is checked against the schema of what
 * this catalog stores (container_registry.schema.json, health and observation included) and bounded in size.
 */
import type { ChangePage, ContainerRegistry } from '../generated';
import { InputError } from '../errors';
import { checkJsonShape, MAX_BODY_DEPTH } from '../lib/json-shape';
import { validateChangePage, validateEntry } from '../schemas';
import type { StoredRegistry } from '../registries/model';

export type Origin = NonNullable<ContainerRegistry['container_registry_origin']>;

/** The most bytes of a peer's answer read; the rest is not downloaded. */
export const MAX_PAGE_BYTES = 8 * 1024 * 1024;
/** The most JSON values (keys included) a page may hold: parsed, each costs about 60 bytes of heap. */
export const MAX_PAGE_VALUES = 200_000;
/** Room for what the service owns in an entry (health, storage observation, times) beside the client's part. */
export const SERVICE_FIELDS_BYTES = 16 * 1024;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function mirrorId(peer: string, id: string): string {
  return `${peer}:${id}`;
}

/** Why the peer's answer cannot be used (kept as the peer's last error, or as a rejection). */
export class PeerAnswerError extends Error {
  override name = 'PeerAnswerError';
}

/** The id an entry of the peer has here; a PeerAnswerError when the peer's id is not a UUID. */
export function mirroredIdOf(peer: string, id: unknown): string {
  if (typeof id !== 'string' || !UUID.test(id)) {
    const shown = typeof id === 'string' ? JSON.stringify(id.slice(0, 80)) : typeof id;
    throw new PeerAnswerError(`container_registry_id ${shown} is not a UUID`);
  }
  return mirrorId(peer, id);
}

/**
 * Why `body` is too costly to parse, or undefined: more than MAX_PAGE_VALUES values (counted as the
 * `{ [ , :` outside strings) or nested deeper than MAX_BODY_DEPTH. One pass over the bytes, no allocation.
 */
export function pageShapeProblem(body: Buffer): string | undefined {
  let values = 0;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const b = body[i]!;
    if (inString) {
      if (b === 0x5c) i++; // backslash: skip the escaped byte
      else if (b === 0x22) inString = false;
      continue;
    }
    if (b === 0x22) inString = true;
    else if (b === 0x7b || b === 0x5b) {
      values++;
      if (++depth > MAX_BODY_DEPTH) return `nested deeper than ${MAX_BODY_DEPTH} levels`;
    } else if (b === 0x7d || b === 0x5d) depth--;
    else if (b === 0x2c || b === 0x3a) values++;
    if (values > MAX_PAGE_VALUES) return `more than ${MAX_PAGE_VALUES} JSON values`;
  }
  return undefined;
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

/**
 * The first change of a page too large to read whole, from its first bytes, when the page is laid out as
 * this service writes it (`{"revision":R,"changes":[{"revision":R,"type":...,"container_registry_id":...`)
 * and holds one change (R twice): the follower then refuses that change and continues after R.
 */
export function oversizedChange(head: Buffer): { revision: number; id: string } | undefined {
  const m = /^\s*\{\s*"revision"\s*:\s*(\d{1,16})\s*,\s*"changes"\s*:\s*\[\s*\{\s*"revision"\s*:\s*(\d{1,16})\s*,\s*"type"\s*:\s*"(?:upsert|delete)"\s*,\s*"container_registry_id"\s*:\s*"([^"\\]{1,200})"/.exec(
    head.subarray(0, 1024).toString('latin1'),
  );
  if (!m || m[1] !== m[2] || !Number.isSafeInteger(Number(m[1]))) return undefined;
  return { revision: Number(m[1]), id: m[3]! };
}

/** Fields of the peer's entry that are not stored here: its masked credentials, its revision, any origin. */
const NOT_STORED = new Set(['container_registry_id', 'container_registry_credentials', 'revision', 'container_registry_origin']);

/**
 * The document stored here for the peer's entry `entry` (as its API returns it), whose id is `id`. The
 * entry must pass this catalog's schema of a stored entry (a peer cannot store what a client could not,
 * and its health, storage observation, times and version must be what this service would write), and be
 * at most `maxBytes` of JSON. Defaults stand in for the service's fields it leaves out. The credentials
 * (masked by the peer: no password), the peer's revision and fields starting with `_` are not kept.
 * Throws PeerAnswerError naming what is wrong.
 */
export function storedFromPeer(peer: string, id: string, entry: Record<string, unknown>, origin: Origin, maxBytes: number): StoredRegistry {
  const _id = mirroredIdOf(peer, id);
  const bytes = Buffer.byteLength(JSON.stringify(entry));
  if (bytes > maxBytes) throw new PeerAnswerError(`entry ${id} is ${bytes} bytes of JSON; at most ${maxBytes} are taken from a peer`);
  const doc: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(entry)) if (!NOT_STORED.has(k) && !k.startsWith('_')) doc[k] = v;
  const now = new Date().toISOString();
  doc.container_registry_health ??= { status: 'unknown', consecutive_failures: 0 };
  doc.version ??= 1;
  doc.created_at ??= now;
  doc.updated_at ??= now;
  try {
    checkJsonShape(doc);
    validateEntry({ container_registry_id: id, ...doc });
  } catch (e) {
    if (e instanceof InputError) throw new PeerAnswerError(`entry ${id} is not valid here: ${e.message}`);
    throw e;
  }
  return { ...structuredClone(doc), _id, container_registry_origin: origin } as unknown as StoredRegistry;
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
