/**
 * Events of one subscription derived from the catalog view (SPEC 16), pure: no database, no HTTP.
 *
 * The deliverer walks the view's items after the subscription's position (view.forEachSince), one entry
 * state at a time in revision order. Several changes of one entry may have been collapsed into its latest
 * state (the view keeps only that), so events are derived by comparing the item with what this subscription
 * was last told about the entry (`Known`, stored per subscription and entry): nothing known and now visible
 * is `registry.created`; a visible entry whose `version` changed is `registry.updated`; a health status other
 * than the one last delivered is `registry.health_changed`; a known entry deleted, or no longer matching the
 * filter, is `registry.deleted`. A subscriber that was down therefore sees the latest state of each entry,
 * and a status that went A -> B -> A while it was down is no event at all.
 *
 * Mirror drift (SPEC 19) the same way: a mirror's entry lists its drifting tags (`observed.mirror_drift`,
 * src/inventory/drift-keeper.ts), and `Known.drift` what the subscription was last told of them: one
 * `registry.mirror_drift` event per (repository, tag) newly drifting or drifting to other digests (`drift` set),
 * and per (repository, tag) that stopped drifting (`drift: null`).
 */
import { createHash } from 'node:crypto';
import { ConsumerLens } from '../feed/changes';
import { toApi, type StoredRegistry } from '../registries/model';
import type { ViewItem } from '../view/catalog-view';

export const EVENT_TYPES = ['registry.created', 'registry.updated', 'registry.deleted', 'registry.health_changed', 'registry.mirror_drift'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** What a subscription was last told about one entry. */
export interface Known {
  version: number;
  status: string | null;
  name: string;
  /** The drifting tags last told (driftKey of each); absent when none. */
  drift?: string[];
}

/** One drifting tag as an event carries it. */
export interface DriftData {
  origin_registry_id: string;
  origin_digest: string;
  mirror_digest: string;
  observed_at: string | null;
}

export interface WebhookEvent {
  id: string;
  type: EventType;
  at: string;
  revision: number;
  data: {
    container_registry_id: string;
    container_registry_name: string;
    previous_status?: string | null;
    status?: string | null;
    error?: string | null;
    detail?: string | null;
    /** registry.mirror_drift: the mirror's repository and tag, and the drift (null: it ended). */
    repository?: string;
    tag?: string;
    drift?: DriftData | null;
    entry: Record<string, unknown> | null;
  };
}

/** Same subscription, revision, type (and tag, for drift): same id, so a redelivery carries the same `webhook-id`. */
export function eventId(subscriptionId: string, revision: number, type: EventType, part?: string): string {
  return 'msg_' + createHash('sha256').update(`${subscriptionId}|${revision}|${type}${part === undefined ? '' : `|${part}`}`).digest('base64url').slice(0, 27);
}

type DriftItem = NonNullable<NonNullable<NonNullable<StoredRegistry['container_registry_storage_info']>['observed']>['mirror_drift']>['items'][number];

const TAB = '\t';
/** A drifting tag as Known keeps it: repository, tag, origin and both digests. */
function driftKey(d: DriftItem): string {
  return [d.repository, d.tag, d.origin_registry_id, d.origin_digest, d.mirror_digest].join(TAB);
}

/** The drift events of one entry state against what the subscription knew, and the drift it knows after them. */
function driftEvents(doc: StoredRegistry, known: Known | undefined, make: (repository: string, tag: string, drift: DriftData | null) => WebhookEvent): { events: WebhookEvent[]; drift: string[] } {
  const summary = doc.container_registry_storage_info?.observed?.mirror_drift;
  const now = summary?.items ?? [];
  const keys = now.map(driftKey);
  const told = new Set(known?.drift ?? []);
  const events: WebhookEvent[] = [];
  const tags = new Set<string>();
  for (let i = 0; i < now.length; i++) {
    const d = now[i]!;
    tags.add(`${d.repository}${TAB}${d.tag}`);
    if (!told.has(keys[i]!)) events.push(make(d.repository, d.tag, { origin_registry_id: d.origin_registry_id, origin_digest: d.origin_digest, mirror_digest: d.mirror_digest, observed_at: summary!.observed_at ?? null }));
  }
  for (const key of told) {
    const [repository, tag] = key.split(TAB) as [string, string];
    if (!tags.has(`${repository}${TAB}${tag}`)) events.push(make(repository, tag, null));
  }
  return { events, drift: keys };
}

export interface Derived {
  events: WebhookEvent[];
  /** What the subscription knows about the entry once these events are delivered (null: nothing). */
  known: Known | null;
}

export function deriveEvents(subscriptionId: string, lens: ConsumerLens, wanted: ReadonlySet<EventType>, item: ViewItem, known: Known | undefined): Derived {
  const doc = item.doc as StoredRegistry | undefined;
  const base = { at: item.at.toISOString(), revision: item.revision };
  const all: WebhookEvent[] = [];
  const make = (type: EventType, name: string, data: Partial<WebhookEvent['data']>, entry: Record<string, unknown> | null): WebhookEvent => ({
    id: eventId(subscriptionId, item.revision, type),
    type,
    ...base,
    data: { container_registry_id: item.id, container_registry_name: name, ...data, entry },
  });
  let next: Known | null;
  if (lens.visible(doc)) {
    const health = doc!.container_registry_health;
    const status = health?.status ?? null;
    const entry = toApi(doc!);
    next = { version: doc!.version, status, name: doc!.container_registry_name };
    if (!known) all.push(make('registry.created', next.name, {}, entry));
    else {
      if (known.version !== doc!.version) all.push(make('registry.updated', next.name, {}, entry));
      if (known.status !== status) {
        all.push(make('registry.health_changed', next.name, { previous_status: known.status, status, error: health?.error ?? null, detail: health?.detail ?? null }, entry));
      }
    }
    const name = next.name;
    const drift = driftEvents(doc!, known, (repository, tag, d) => ({
      id: eventId(subscriptionId, item.revision, 'registry.mirror_drift', `${repository}:${tag}`),
      type: 'registry.mirror_drift',
      ...base,
      data: { container_registry_id: item.id, container_registry_name: name, repository, tag, drift: d, entry },
    }));
    all.push(...drift.events);
    if (drift.drift.length > 0) next.drift = drift.drift;
  } else {
    next = null;
    if (known) all.push(make('registry.deleted', doc?.container_registry_name ?? known.name, {}, null));
  }
  return { events: all.filter((e) => wanted.has(e.type)), known: next };
}
