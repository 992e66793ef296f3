/**
 * Follows one peer's change feed (SPEC 15) while this replica holds the peer's lease (lease.ts): lists it
 * from since=0 (origin=local, so entries mirrored by the peer never come back), then long-polls from the
 * revision it answered, and writes every change through the one entry writer (so mirrored entries get
 * local revisions and appear in the feed, the view, queries and resolution). Its state (position, last
 * success, last error, staleness) is kept in `federation_peers`, so another replica resumes where it stopped.
 *
 * - A 410, or a 400 on `since` (the peer's revisions went backwards: restored from an older backup), is
 *   answered by a relist: the entries of the peer missing from the new list are deleted here.
 * - A peer not reached for PEER_STALE_AFTER_S keeps its entries, marked `stale: true` (one write per entry
 *   when the state flips), until it answers again.
 * - Every request has a deadline; one peer's failures only delay that peer's loop.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Collection, Db, Filter } from 'mongodb';
import type { Peer } from '../config';
import { ConflictError } from '../errors';
import type { Logger } from '../logger';
import type { HttpClient } from '../probe';
import { NAME_KEY, nameKey, originPeer, type StoredRegistry } from '../registries/model';
import { canonical } from '../registries/service';
import type { EntryWriter } from '../registries/writes';
import type { PeerLeases } from './lease';
import { mirrorId, needsRelist, parseChangePage, PeerAnswerError, storedFromPeer, type Origin } from './mirror';

export const PEER_STATE = 'federation_peers';
const PAGE_LIMIT = 500;
const MAX_BODY_BYTES = 64 * 1024 * 1024;

export interface PeerState {
  _id: string;
  url: string;
  /** The peer's revision every change up to which is stored here; absent: list from since=0. */
  revision?: number;
  last_success_at?: Date;
  last_error?: string;
  last_error_at?: Date;
  stale: boolean;
}

export interface FollowerOptions {
  peer: Peer;
  key?: string;
  staleAfterMs: number;
  db: Db;
  writer: EntryWriter;
  client: HttpClient;
  leases: PeerLeases;
  logger: Logger;
}

const ORIGIN_PEER = 'container_registry_origin.peer';

export class PeerFollower {
  private readonly states: Collection<PeerState>;
  private stopped = false;
  private abort = new AbortController();
  private gen?: number;
  private loop?: Promise<void>;
  private renewTimer?: NodeJS.Timeout;
  private state?: PeerState;
  private failures = 0;
  /** Why the last entry the peer sent that could not be stored was skipped (shown as the last error). */
  private skipped?: string;
  private readonly waitS: number;

  constructor(private readonly o: FollowerOptions) {
    this.states = o.db.collection<PeerState>(PEER_STATE);
    // A healthy idle peer answers every long poll: often enough that a live peer never looks stale.
    this.waitS = Math.max(1, Math.min(30, Math.floor(o.staleAfterMs / 2000)));
  }

  get name(): string {
    return this.o.peer.name;
  }

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    clearInterval(this.renewTimer);
    await this.loop?.catch(() => undefined);
    if (this.gen !== undefined) await this.o.leases.release(this.name, this.gen).catch(() => undefined);
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (this.gen === undefined) {
          if (!(await this.takeLease())) {
            await sleep(Math.max(500, this.o.leases.ttlMs / 4), undefined, { signal: this.abort.signal }).catch(() => undefined);
            continue;
          }
        }
        await this.step();
        this.failures = 0;
      } catch (e) {
        if (this.stopped) return;
        if (this.abort.signal.aborted) {
          this.abort = new AbortController();
          continue;
        }
        await this.failed(e).catch(() => undefined);
        const backoff = Math.min(5000, 250 * 2 ** Math.min(this.failures++, 5));
        await sleep(backoff, undefined, { signal: this.abort.signal }).catch(() => undefined);
        if (this.abort.signal.aborted && !this.stopped) this.abort = new AbortController();
      }
    }
  }

  private async takeLease(): Promise<boolean> {
    const gen = await this.o.leases.acquire(this.name);
    if (gen === undefined) return false;
    this.gen = gen;
    this.state = (await this.states.findOne({ _id: this.name })) ?? { _id: this.name, url: this.o.peer.url, stale: false };
    // The peer may have moved (PEERS changed): its position means nothing at another URL.
    if (this.state.url !== this.o.peer.url) this.state = { _id: this.name, url: this.o.peer.url, stale: this.state.stale };
    this.state.last_success_at ??= new Date();
    this.o.logger.info('following peer', { peer: this.name, url: this.o.peer.url, revision: this.state.revision ?? null, lease_generation: gen });
    this.renewTimer = setInterval(() => void this.renew(), Math.max(200, this.o.leases.ttlMs / 3));
    this.renewTimer.unref();
    return true;
  }

  private async renew(): Promise<void> {
    const gen = this.gen;
    if (gen === undefined) return;
    const held = await this.o.leases.renew(this.name, gen).catch(() => true);
    if (!held && this.gen === gen) {
      this.o.logger.warn('lease of peer taken over by another replica', { peer: this.name });
      this.gen = undefined;
      clearInterval(this.renewTimer);
      this.abort.abort();
    }
    // The peer may be hanging: staleness is decided here, not when the request ends.
    if (this.gen !== undefined && !this.state!.stale && Date.now() - this.state!.last_success_at!.getTime() > this.o.staleAfterMs) {
      await this.setStale(true).catch(() => undefined);
    }
  }

  /** One request to the peer and what follows from it. */
  private async step(): Promise<void> {
    const state = this.state!;
    if (state.revision === undefined) return this.relist();
    const res = await this.request(state.revision, this.waitS);
    if (needsRelist(res.status, res.body)) {
      this.o.logger.warn('peer asks for a relist', { peer: this.name, status: res.status, since: state.revision });
      state.revision = undefined;
      return this.relist();
    }
    if (res.status !== 200) throw new PeerAnswerError(`the peer answered HTTP ${res.status}`);
    const page = parseChangePage(res.body);
    await this.reached();
    await this.apply(page.changes, undefined);
    await this.save({ revision: page.revision });
  }

  /** Lists the peer from since=0; entries of the peer not in the list are deleted here. */
  private async relist(): Promise<void> {
    const listed = new Set<string>();
    let since = 0;
    for (;;) {
      const res = await this.request(since, 0);
      if (res.status !== 200) throw new PeerAnswerError(`the peer answered HTTP ${res.status} to a list`);
      const page = parseChangePage(res.body);
      await this.reached();
      await this.apply(page.changes, listed);
      since = page.revision;
      if (page.changes.length < PAGE_LIMIT) break;
    }
    const here = await this.o.writer.collection.find({ [ORIGIN_PEER]: this.name } as Filter<StoredRegistry>, { projection: { _id: 1 } }).toArray();
    for (const { _id } of here) if (!listed.has(_id)) await this.remove(_id);
    await this.save({ revision: since });
  }

  private async request(since: number, wait: number) {
    const url = new URL(`${this.o.peer.url}/container_registries/changes`);
    url.search = new URLSearchParams({ since: String(since), limit: String(PAGE_LIMIT), origin: 'local', wait: String(wait) }).toString();
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'registry-db-federation/0.1' };
    if (this.o.key) headers.authorization = `Bearer ${this.o.key}`;
    // The long poll's wait, the peer's own catch-up (up to 2 s) and room for a slow network.
    const deadline = AbortSignal.timeout((wait + 10) * 1000);
    const res = await this.o.client.send({ url, headers, tls: {}, signal: AbortSignal.any([deadline, this.abort.signal]), maxBodyBytes: MAX_BODY_BYTES });
    if (res.bodyTruncated) throw new PeerAnswerError(`the peer's answer exceeds ${MAX_BODY_BYTES} bytes`);
    return res;
  }

  /** Writes the changes of a page; `listed` collects the ids present (a list). */
  private async apply(changes: Array<{ revision: number; type: string; container_registry_id: string; entry?: Record<string, unknown> }>, listed: Set<string> | undefined): Promise<void> {
    for (const c of changes) {
      // Stopping: leave the page unfinished (its position is not saved; the next holder applies it again).
      if (this.stopped) throw new Error('the follower is stopping');
      const id = mirrorId(this.name, c.container_registry_id);
      if (c.type === 'delete' || !c.entry) {
        listed?.delete(id);
        await this.remove(id);
        continue;
      }
      const origin: Origin = { peer: this.name, url: this.o.peer.url, revision: c.revision, synced_at: new Date().toISOString(), stale: false };
      let doc: StoredRegistry;
      try {
        doc = storedFromPeer(this.name, { ...c.entry, container_registry_id: c.container_registry_id }, origin);
      } catch (e) {
        // One entry this catalog cannot take does not stop the rest of the peer's feed: it is skipped, and said.
        if (!(e instanceof PeerAnswerError)) throw e;
        this.skipped = e.message;
        this.o.logger.warn('entry of peer skipped', { peer: this.name, error: e.message });
        continue;
      }
      listed?.add(id);
      await this.upsert(doc);
    }
  }

  private async upsert(doc: StoredRegistry, retry = true): Promise<void> {
    const exists = await this.o.writer.modify(doc._id, (cur) => {
      if (!cur) return { kind: 'none', result: false };
      if (sameMirror(cur, doc)) return { kind: 'none', result: true };
      return { kind: 'replace', next: { ...doc }, result: true };
    });
    try {
      if (!exists) await this.o.writer.create({ ...doc });
    } catch (e) {
      // Two of the peer's entries swapped names: the one still holding the name here follows with its own change.
      if (!(e instanceof ConflictError) || !retry) throw e;
      const holder = await this.o.writer.collection.findOne({ [NAME_KEY]: nameKey(doc) } as Filter<StoredRegistry>, { projection: { _id: 1 } });
      if (!holder || holder._id === doc._id) throw e;
      await this.remove(holder._id);
      return this.upsert(doc, false);
    }
  }

  private async remove(id: string): Promise<void> {
    await this.o.writer.modify(id, (cur) => (cur && originPeer(cur) === this.name ? { kind: 'delete', result: undefined } : { kind: 'none', result: undefined }));
  }

  /** The peer answered: it is no longer stale. */
  private async reached(): Promise<void> {
    this.state!.last_success_at = new Date();
    this.failures = 0;
    if (this.state!.stale) await this.setStale(false);
  }

  /** Marks every entry of the peer stale (or not): one write per entry whose flag differs. */
  private async setStale(stale: boolean): Promise<void> {
    this.state!.stale = stale;
    this.o.logger.warn(stale ? 'peer unreachable: its entries are marked stale' : 'peer reachable again', { peer: this.name, last_success_at: this.state!.last_success_at });
    const ids = await this.o.writer.collection
      .find({ [ORIGIN_PEER]: this.name, 'container_registry_origin.stale': !stale } as Filter<StoredRegistry>, { projection: { _id: 1 } })
      .toArray();
    for (const { _id } of ids) {
      await this.o.writer.modify(_id, (cur) => {
        if (!cur || originPeer(cur) !== this.name || cur.container_registry_origin!.stale === stale) return { kind: 'none', result: undefined };
        return { kind: 'replace', next: { ...cur, container_registry_origin: { ...cur.container_registry_origin!, stale } }, result: undefined };
      });
    }
    await this.save({});
  }

  private async failed(e: unknown): Promise<void> {
    const message = e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e);
    if (message !== this.state?.last_error) this.o.logger.warn('peer sync failed', { peer: this.name, error: message });
    if (!this.state) return;
    await this.save({ last_error: message, last_error_at: new Date() });
  }

  private async save(change: Partial<PeerState>): Promise<void> {
    const state = Object.assign(this.state!, change);
    if ('revision' in change) {
      state.last_error = this.skipped;
      state.last_error_at = this.skipped ? new Date() : undefined;
      this.skipped = undefined;
    }
    const { _id, ...rest } = state;
    await this.states.replaceOne({ _id }, Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) as Omit<PeerState, '_id'>, { upsert: true });
  }
}

/** Whether the stored mirror already holds the peer's state (the time it was synced aside). */
function sameMirror(cur: StoredRegistry, next: StoredRegistry): boolean {
  const strip = (d: StoredRegistry) => {
    const { revision: _r, container_registry_origin: o, ...rest } = d as StoredRegistry & { revision?: number };
    for (const k of Object.keys(rest)) if (k.startsWith('_')) delete (rest as Record<string, unknown>)[k];
    return canonical({ ...rest, o: o ? { ...o, synced_at: undefined } : undefined });
  };
  return strip(cur) === strip(next);
}
