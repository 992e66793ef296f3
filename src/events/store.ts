/**
 * What webhooks keep in the database: the subscriptions (with their position, the last revision delivered,
 * and their sealed secret), what each subscription was last told about each entry (`Known`, one row per
 * subscription and entry it has seen; removed when the entry is delivered as deleted, so bounded by
 * subscriptions x entries), and a delivery log of the last LOG_KEEP attempts per subscription.
 * Every write by `_id` (the one lookup FerretDB v1 serves from an index); only the replica holding a
 * subscription's lease writes its position, states and log.
 */
import { randomUUID } from 'node:crypto';
import type { Collection, Db } from 'mongodb';
import { ensureIndexes } from '../db/indexes';
import type { CredentialCipher } from '../registries/credentials';
import type { EventType, Known } from './events';

export const LOG_KEEP = 100;

export type SubscriptionStatus = 'active' | 'failing' | 'disabled';

export interface StoredSubscription {
  _id: string;
  url: string;
  events: EventType[];
  /** The filter as the client sent it (JSON text: operators cannot be stored as keys everywhere). */
  filter_json?: string;
  secret_enc: string;
  status: SubscriptionStatus;
  status_reason?: string;
  /** Every change up to this revision was delivered (or was no event for this subscription). */
  position: number;
  created_at: Date;
  delivered: number;
  failed_attempts: number;
  last_error?: { at: Date; event_id: string; http_status: number | null; error: string } | null;
  /** When the event now being retried first failed (the 24 h budget survives restarts). */
  failing_since?: Date | null;
}

interface KnownRow extends Known {
  _id: string;
  sub: string;
}

export interface DeliveryRow {
  _id: string;
  sub: string;
  event_id: string;
  type: EventType;
  revision: number;
  attempt: number;
  http_status: number | null;
  error: string | null;
  duration_ms: number;
  at: Date;
}

export class WebhookStore {
  readonly subs: Collection<StoredSubscription>;
  readonly known: Collection<KnownRow>;
  readonly log: Collection<DeliveryRow>;
  private logWrites = new Map<string, number>();

  constructor(db: Db, private readonly cipher: CredentialCipher) {
    this.subs = db.collection<StoredSubscription>('webhook_subscriptions');
    this.known = db.collection<KnownRow>('webhook_entry_state');
    this.log = db.collection<DeliveryRow>('webhook_deliveries');
  }

  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.known, [{ key: { sub: 1 }, name: 'sub' }]);
    await ensureIndexes(this.log, [{ key: { sub: 1, at: -1 }, name: 'sub_at' }]);
  }

  /** The secret sealed like registry credentials, bound to the subscription id (its additional data). */
  seal(id: string, secret: string): string {
    return this.cipher.seal({ username: id, password: secret }).password_enc;
  }

  open(sub: StoredSubscription): string {
    return this.cipher.open({ username: sub._id, password_enc: sub.secret_enc }).password;
  }

  async create(sub: StoredSubscription): Promise<void> {
    await this.subs.insertOne(sub);
  }

  get(id: string): Promise<StoredSubscription | null> {
    return this.subs.findOne({ _id: id });
  }

  list(): Promise<StoredSubscription[]> {
    return this.subs.find({}).sort({ created_at: 1 }).toArray();
  }

  async remove(id: string): Promise<boolean> {
    const r = await this.subs.deleteOne({ _id: id });
    await this.known.deleteMany({ sub: id });
    await this.log.deleteMany({ sub: id });
    return r.deletedCount > 0;
  }

  async update(id: string, set: Partial<StoredSubscription>, inc?: Partial<Record<'delivered' | 'failed_attempts', number>>, unset: Array<keyof StoredSubscription> = []): Promise<void> {
    await this.subs.updateOne({ _id: id }, { $set: set, ...(inc ? { $inc: inc } : {}), ...(unset.length > 0 ? { $unset: Object.fromEntries(unset.map((k) => [k, ''])) } : {}) });
  }

  async loadKnown(sub: string): Promise<Map<string, Known>> {
    const out = new Map<string, Known>();
    for (const r of await this.known.find({ sub }).toArray()) out.set(r._id.slice(sub.length + 1), { version: r.version, status: r.status, name: r.name, ...(r.drift ? { drift: r.drift } : {}) });
    return out;
  }

  /** The states of several entries of one subscription (null: remove), in one bulk write. */
  async saveKnownMany(sub: string, states: ReadonlyMap<string, Known | null>): Promise<void> {
    if (states.size === 0) return;
    const ops = [...states].map(([entry, known]) => {
      const _id = `${sub}|${entry}`;
      return known ? { replaceOne: { filter: { _id }, replacement: { sub, ...known }, upsert: true } } : { deleteOne: { filter: { _id } } };
    });
    await this.known.bulkWrite(ops, { ordered: true });
  }

  /** Appends one attempt (see recordMany). */
  record(row: Omit<DeliveryRow, '_id'>): Promise<void> {
    return this.recordMany([row]);
  }

  /** Appends attempts of one subscription in one insert; every 20 appends, drops what is beyond its last LOG_KEEP. */
  async recordMany(rows: Array<Omit<DeliveryRow, '_id'>>): Promise<void> {
    if (rows.length === 0) return;
    const sub = rows[0]!.sub;
    const docs = rows.map((row) => ({ _id: randomUUID(), ...row }));
    if (docs.length === 1) await this.log.insertOne(docs[0]!);
    else await this.log.insertMany(docs, { ordered: true });
    const before = this.logWrites.get(sub) ?? 0;
    const n = before + rows.length;
    this.logWrites.set(sub, n % 20);
    if (n >= 20) {
      const cut = await this.log.find({ sub }).sort({ at: -1 }).skip(LOG_KEEP - 1).limit(1).toArray();
      if (cut[0]) await this.log.deleteMany({ sub, at: { $lt: cut[0].at } });
    }
  }

  recent(sub: string, limit = LOG_KEEP): Promise<DeliveryRow[]> {
    return this.log.find({ sub }).sort({ at: -1 }).limit(limit).toArray();
  }
}
