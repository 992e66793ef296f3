/**
 * The shapes of an entry: as the API sees it (generated from schemas/container_registry.schema.json) and
 * as it is stored (`_id` = container_registry_id, credentials sealed, service-owned fields).
 */
import type { ContainerRegistry, ContainerRegistryHealth } from '../generated';
import { entryFields } from '../schemas';
import type { StoredCredentials } from './credentials';

export type Entry = ContainerRegistry;

export interface StoredRegistry extends Omit<Entry, 'container_registry_id' | 'container_registry_credentials'> {
  _id: string;
  container_registry_credentials?: StoredCredentials;
  container_registry_health: ContainerRegistryHealth;
  created_at: string;
  updated_at: string;
  version: number;
  /** Scheduler-owned bookkeeping (leases, tickets); never returned by the API. Names start with `_`. */
  [internal: `_${string}`]: unknown;
}

export const COLLECTION = 'container_registries';

/** The peer an entry was mirrored from (SPEC 15), or undefined for a local entry. */
export function originPeer(doc: Readonly<Pick<StoredRegistry, 'container_registry_origin'>>): string | undefined {
  const peer = (doc.container_registry_origin as { peer?: unknown } | undefined)?.peer;
  return typeof peer === 'string' ? peer : undefined;
}

/**
 * The stored field the unique index `name_key_unique` is on: names are unique per origin, so a peer's entry
 * may share its name with a local one. `<peer>/<name>`, or `/<name>` for a local entry (peer names have no `/`).
 */
export const NAME_KEY = '_name_key';
export function nameKey(doc: Readonly<Pick<StoredRegistry, 'container_registry_name' | 'container_registry_origin'>>): string {
  return `${originPeer(doc) ?? ''}/${doc.container_registry_name}`;
}

/** Field order of API answers: the schema's, whatever order the stored document has (updates rewrite it). */
const FIELD_ORDER = new Map(entryFields.map((f, i) => [f, i]));
const rank = (k: string) => FIELD_ORDER.get(k) ?? FIELD_ORDER.size;

/** The entry as the API returns it: id first, fields in schema order, credentials masked, internal fields dropped. */
export function toApi(doc: Partial<StoredRegistry> & { _id: string }): Record<string, unknown> {
  const out: Record<string, unknown> = { container_registry_id: doc._id };
  const keys = Object.keys(doc).sort((a, b) => rank(a) - rank(b));
  for (const k of keys) {
    const v = (doc as Record<string, unknown>)[k];
    if (k.startsWith('_')) continue;
    if (k === 'container_registry_credentials' && v) {
      out[k] = { username: (v as StoredCredentials).username, password_set: true };
      continue;
    }
    out[k] = v;
  }
  return out;
}

export function etagOf(version: number): string {
  return `"${version}"`;
}

/**
 * The one place client-written text of an entry is normalised (create, update and onboarding all call it
 * before validating): the name in Unicode NFC, so that two spellings of the same text (a precomposed "é"
 * and "e" + combining accent) are one name for the unique index. What is refused (unpaired surrogates,
 * controls, bidirectional overrides, zero-width characters) the schema's pattern says.
 */
export function normaliseEntry(entry: Record<string, unknown>): void {
  const name = entry.container_registry_name;
  if (typeof name === 'string') entry.container_registry_name = name.normalize('NFC');
}
