/**
 * Federation with peer catalogs (SPEC 15): every replica runs one follower per peer of `PEERS`; the peer's
 * lease (lease.ts) makes one of them at a time follow it (follower.ts). `status()` is GET /peers: each
 * peer's state as stored by whichever replica follows it.
 */
import type { Db, Filter } from 'mongodb';
import type { Config } from '../config';
import type { Logger } from '../logger';
import { registerSecret } from '../logger';
import type { PeerStatus } from '../generated';
import type { HttpClient } from '../probe';
import { COLLECTION, type StoredRegistry } from '../registries/model';
import type { EntryWriter } from '../registries/writes';
import { PEER_STATE, PeerFollower, type PeerState } from './follower';
import { Leases } from '../db/lease';
import { SERVICE_FIELDS_BYTES } from './mirror';

/** A follower that stops renewing (dead or hung replica) is replaced after this long. */
export const PEER_LEASE_MS = 10_000;

export type { PeerStatus };

export class Federation {
  readonly leases: Leases;
  private readonly followers: PeerFollower[];

  constructor(private readonly config: Pick<Config, 'PEERS' | 'PEER_KEYS' | 'PEER_STALE_AFTER_S' | 'BODY_LIMIT_BYTES'>, private readonly db: Db, writer: EntryWriter, client: HttpClient, logger: Logger) {
    this.leases = new Leases(db, 'peer', PEER_LEASE_MS);
    for (const key of config.PEER_KEYS.values()) registerSecret(key);
    // A peer's entry may be as large as what a client may send here in one request, plus the service's fields.
    const maxEntryBytes = config.BODY_LIMIT_BYTES + SERVICE_FIELDS_BYTES;
    this.followers = config.PEERS.map(
      (peer) =>
        new PeerFollower({ peer, key: config.PEER_KEYS.get(peer.name), staleAfterMs: config.PEER_STALE_AFTER_S * 1000, maxEntryBytes, db, writer, client, leases: this.leases, logger }),
    );
  }

  async start(): Promise<void> {
    if (this.followers.length === 0) return;
    await this.leases.ensureIndexes();
    for (const f of this.followers) f.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.followers.map((f) => f.stop()));
  }

  async status(): Promise<PeerStatus[]> {
    const states = new Map((await this.db.collection<PeerState>(PEER_STATE).find({}).toArray()).map((s) => [s._id, s]));
    const entries = this.db.collection<StoredRegistry>(COLLECTION);
    return Promise.all(
      this.config.PEERS.map(async (peer) => {
        const s = states.get(peer.name);
        const current = s?.url === peer.url ? s : undefined;
        const success = current?.last_success_at;
        return {
          name: peer.name,
          url: peer.url,
          following_replica: (await this.leases.holder(peer.name)) ?? null,
          revision: current?.revision ?? null,
          epoch: current?.epoch ?? null,
          lag_s: success ? Math.max(0, Math.round((Date.now() - success.getTime()) / 100) / 10) : null,
          last_success_at: success?.toISOString() ?? null,
          last_error: current?.last_error ?? null,
          last_error_at: current?.last_error_at?.toISOString() ?? null,
          rejected: current?.rejected ?? 0,
          last_rejection: current?.last_rejection ?? null,
          last_rejection_at: current?.last_rejection_at?.toISOString() ?? null,
          entries: await entries.countDocuments({ 'container_registry_origin.peer': peer.name } as Filter<StoredRegistry>),
          stale: current?.stale ?? false,
        };
      }),
    );
  }
}
