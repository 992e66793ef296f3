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
 */
import { createHash } from 'node:crypto';
import { ConsumerLens } from '../feed/changes';
import { toApi, type StoredRegistry } from '../registries/model';
import type { ViewItem } from '../view/catalog-view';

export const EVENT_TYPES = ['registry.created', 'registry.updated', 'registry.deleted', 'registry.health_changed'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** What a subscription was last told about one entry. */
export interface Known {
  version: number;
  status: string | null;
  name: string;
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
    entry: Record<string, unknown> | null;
  };
}

/** Same subscription, revision and type: same id, so a redelivery carries the same `webhook-id`. */
export function eventId(subscriptionId: string, revision: number, type: EventType): string {
  return 'msg_' + createHash('sha256').update(`${subscriptionId}|${revision}|${type}`).digest('base64url').slice(0, 27);
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
  } else {
    next = null;
    if (known) all.push(make('registry.deleted', doc?.container_registry_name ?? known.name, {}, null));
  }
  return { events: all.filter((e) => wanted.has(e.type)), known: next };
}
