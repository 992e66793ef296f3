/**
 * Follows one peer's change feed (SPEC 15) while this replica holds the peer's lease (lease.ts): lists it
 * from since=0 (origin=local, so entries mirrored by the peer never come back), then long-polls from the
 * revision it answered, and writes every change through the one entry writer (so mirrored entries get
 * local revisions and appear in the feed, the view, queries and resolution). Its state (position, epoch,
 * last success, last error, rejections, staleness) is kept in `federation_peers`, so another replica
 * resumes where it stopped.
 *
 * - A 410, a 400 on `since` or a revision behind our position (the peer went backwards: restored from an
 *   older backup), or another epoch (restored, and maybe grown past our position since) is answered by a
 *   relist: the entries of the peer missing from the new list are deleted here.
 * - The peer is untrusted (mirror.ts): its answer is read up to MAX_PAGE_BYTES and parsed only within
 *   bounds; a page over them is asked for again with a smaller `limit`; one change over them, or an entry
 *   this catalog would not store, is refused (counted, logged, shown in GET /peers) and the follower moves on.
 *   An entry the database refuses MAX_STORE_ATTEMPTS times in a row (while it answers other writes) too.
 * - Paced: a step that changed nothing here and ended before the long poll's wait (a peer that ignores
 *   `wait`, answers at once with nothing new, or resends what we hold) is followed by a growing pause.
 *   Its state is written when it moved, else at most every STATE_REFRESH_MS.
 * - A peer not reached for PEER_STALE_AFTER_S keeps its entries, marked `stale: true` (one write per entry
 *   when the state flips), until it answers again.
 * - Every request has a deadline; one peer's failures only delay that peer's loop.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Collection, Db, Filter } from 'mongodb';
import type { Peer } from '../config';
import { ConflictError } from '../errors';
import type { ChangePage } from '../generated';
import type { Logger } from '../logger';
import type { HttpClient } from '../probe';
import { NAME_KEY, nameKey, originPeer, type StoredRegistry } from '../registries/model';
import { canonical } from '../registries/service';
import type { EntryWriter } from '../registries/writes';
import type { Held, Leases } from '../db/lease';
import { MAX_PAGE_BYTES, mirroredIdOf, needsRelist, oversizedChange, pageShapeProblem, parseChangePage, PeerAnswerError, storedFromPeer, type Origin } from './mirror';

export const PEER_STATE = 'federation_peers';
/** Changes asked for per page: small enough that an honest page stays far below MAX_PAGE_BYTES. */
export const PAGE_LIMIT = 100;
/** The pause after a step that brought nothing grows from this... */
const IDLE_PAUSE_MIN_MS = 200;
/** ...up to this (each pause is a random 50–100 % of its step). */
export const IDLE_PAUSE_MAX_MS = 5000;
/** An entry whose write fails this many times in a row while the database answers is refused. */
const MAX_STORE_ATTEMPTS = 3;
/** An unchanged state is written at most this often (its last_success_at feeds GET /peers' lag_s). */
const STATE_REFRESH_MS = 10_000;

export interface PeerState {
  _id: string;
  url: string;
  /** The peer's revision every change up to which is stored here; absent: list from since=0. */
  revision?: number;
  /** The peer's epoch `revision` belongs to (absent: not known yet, or the peer sends none). */
  epoch?: string;
  last_success_at?: Date;
  last_error?: string;
  last_error_at?: Date;
  /** Changes of the peer refused here, and the last reason. */
  rejected?: number;
  last_rejection?: string;
  last_rejection_at?: Date;
  stale: boolean;
}

export interface FollowerOptions {
  peer: Peer;
  key?: string;
  staleAfterMs: number;
  /** The largest entry (bytes of JSON) taken from the peer. */
  maxEntryBytes: number;
  db: Db;
  writer: EntryWriter;
  client: HttpClient;
  leases: Leases;
  logger: Logger;
}

type Change = ChangePage['changes'][number];

/** A page of the peer within the bounds, and whether more may follow it (a list goes on). */
interface Got {
  page: ChangePage;
  more: boolean;
}

/** Writing one entry of the peer failed (the page is retried; see MAX_STORE_ATTEMPTS). */
class EntryStoreError extends Error {
  constructor(readonly id: string, cause: unknown) {
    super(`storing entry ${id} failed: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'EntryStoreError';
  }
}

const ORIGIN_PEER = 'container_registry_origin.peer';

export class PeerFollower {
  private readonly states: Collection<PeerState>;
  private stopped = false;
  private abort = new AbortController();
  private lease?: Held;
  private loop?: Promise<void>;
  private renewTimer?: NodeJS.Timeout;
  private state?: PeerState;
  /** The state differs from what was last written. */
  private dirty = false;
  private savedAt = 0;
  private failures = 0;
  /** Steps in a row that brought nothing (the pause grows with them). */
  private idleSteps = 0;
  /** Writes made here for the peer (tells a step that changed something from one that did not). */
  private writes = 0;
  /** The `limit` asked for: halved while pages come back over the bounds, grown back after. */
  private limit = PAGE_LIMIT;
  /** The entry whose write keeps failing, and how many times it did while the database answered. */
  private storeFailures?: { id: string; count: number };
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
    if (this.lease) await this.o.leases.release(this.lease).catch(() => undefined);
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (!this.lease) {
          if (!(await this.takeLease())) {
            await this.pause(Math.max(500, this.o.leases.ttlMs / 4));
            continue;
          }
        }
        const started = Date.now();
        const writes = this.writes;
        await this.step();
        this.failures = 0;
        // Nothing changed here, sooner than the long poll promised: wait before asking again.
        if (this.writes === writes && Date.now() - started < this.waitS * 1000) await this.pause(jitter(Math.min(IDLE_PAUSE_MAX_MS, IDLE_PAUSE_MIN_MS * 2 ** Math.min(this.idleSteps++, 8))));
        else this.idleSteps = 0;
      } catch (e) {
        if (this.stopped) return;
        if (this.abort.signal.aborted) {
          this.abort = new AbortController();
          continue;
        }
        await this.failed(e).catch(() => undefined);
        await this.pause(Math.min(5000, 250 * 2 ** Math.min(this.failures++, 5)));
      }
    }
  }

  /** Sleeps `ms`, or less when the follower stops or loses its lease. */
  private async pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.abort.signal }).catch(() => undefined);
    if (this.abort.signal.aborted && !this.stopped) this.abort = new AbortController();
  }

  private async takeLease(): Promise<boolean> {
    const lease = await this.o.leases.acquire(this.name);
    if (!lease) return false;
    this.lease = lease;
    this.state = (await this.states.findOne({ _id: this.name })) ?? { _id: this.name, url: this.o.peer.url, stale: false };
    // The peer may have moved (PEERS changed): its position means nothing at another URL.
    if (this.state.url !== this.o.peer.url) this.state = { _id: this.name, url: this.o.peer.url, stale: this.state.stale, rejected: this.state.rejected };
    this.state.last_success_at ??= new Date();
    this.o.logger.info('following peer', { peer: this.name, url: this.o.peer.url, revision: this.state.revision ?? null, epoch: this.state.epoch ?? null, lease_generation: lease.gen });
    this.renewTimer = setInterval(() => void this.renew(), Math.max(200, this.o.leases.ttlMs / 3));
    this.renewTimer.unref();
    return true;
  }

  private async renew(): Promise<void> {
    const lease = this.lease;
    if (!lease) return;
    const held = await this.o.leases.renew(lease).catch(() => true);
    if (!held && this.lease === lease) {
      this.o.logger.warn('lease of peer taken over by another replica', { peer: this.name });
      this.lease = undefined;
      clearInterval(this.renewTimer);
      this.abort.abort();
    }
    // The peer may be hanging: staleness is decided here, not when the request ends.
    if (this.lease && !this.state!.stale && Date.now() - this.state!.last_success_at!.getTime() > this.o.staleAfterMs) {
      await this.setStale(true).catch(() => undefined);
    }
  }

  /** One long poll of the peer and what follows from it. */
  private async step(): Promise<void> {
    const state = this.state!;
    if (state.revision === undefined) return this.relist();
    const since = state.revision;
    const got = await this.page(since, this.waitS);
    const relist =
      got === 'relist'
        ? 'the peer asks for a relist (410, or our position is beyond its latest revision)'
        : got.page.revision < since
          ? `the peer's revision went backwards (${got.page.revision} < ${since})`
          : got.page.epoch !== undefined && state.epoch !== undefined && got.page.epoch !== state.epoch
            ? `the peer's epoch changed (${state.epoch} -> ${got.page.epoch}): restored from an export, or a new database`
            : undefined;
    if (relist !== undefined) {
      this.o.logger.warn('relisting peer', { peer: this.name, reason: relist, since });
      state.revision = undefined;
      return this.relist();
    }
    const { page } = got as Got;
    await this.reached();
    await this.apply(page.changes, undefined);
    await this.stored(page.revision, page.epoch ?? state.epoch);
  }

  /** Lists the peer from since=0 (one epoch throughout); entries of the peer not in the list are deleted here. */
  private async relist(): Promise<void> {
    const listed = new Set<string>();
    let since = 0;
    let epoch: string | undefined;
    for (;;) {
      const got = await this.page(since, 0);
      if (got === 'relist') throw new PeerAnswerError(`the peer refused to list from revision ${since}`);
      const { page, more } = got;
      if (epoch !== undefined && page.epoch !== undefined && page.epoch !== epoch) throw new PeerAnswerError('the peer\'s epoch changed during a list; listing again');
      epoch ??= page.epoch;
      if (page.revision < since || (more && page.revision === since)) throw new PeerAnswerError(`the peer's list does not advance (revision ${page.revision} after ${since})`);
      await this.reached();
      await this.apply(page.changes, listed);
      // A long list shows its refusals (and that the peer answers) as it goes; a list cut short starts over.
      await this.flush();
      since = page.revision;
      if (!more) break;
    }
    const here = await this.o.writer.collection.find({ [ORIGIN_PEER]: this.name } as Filter<StoredRegistry>, { projection: { _id: 1 } }).toArray();
    for (const { _id } of here) if (!listed.has(_id)) await this.remove(_id);
    await this.stored(since, epoch);
  }

  /**
   * The page after `since` within the bounds. A page over them is asked for again with half the `limit`;
   * a single change over them is refused, and the page goes on after it when it says where (else an error).
   */
  private async page(since: number, wait: number): Promise<Got | 'relist'> {
    for (;;) {
      const limit = this.limit;
      const res = await this.request(since, wait, limit);
      if (needsRelist(res.status, res.body)) return 'relist';
      if (res.status !== 200) throw new PeerAnswerError(`the peer answered HTTP ${res.status}`);
      const over = res.bodyTruncated ? `over ${MAX_PAGE_BYTES} bytes` : pageShapeProblem(res.body);
      if (over === undefined) {
        const page = parseChangePage(res.body);
        if (res.body.length < MAX_PAGE_BYTES / 4) this.limit = Math.min(PAGE_LIMIT, limit * 2);
        return { page, more: page.changes.length >= limit };
      }
      this.o.logger.warn('page of peer over the bounds', { peer: this.name, since, limit, why: over });
      if (limit > 1) {
        this.limit = Math.floor(limit / 2);
        continue;
      }
      const one = oversizedChange(res.body);
      if (!one || one.revision <= since) throw new PeerAnswerError(`the change of the peer after revision ${since} is ${over}, and its page does not say where it ends`);
      await this.refuse(one.id, `the change at the peer's revision ${one.revision} is ${over}`, undefined);
      return { page: { revision: one.revision, changes: [] }, more: true };
    }
  }

  private async request(since: number, wait: number, limit: number) {
    const url = new URL(`${this.o.peer.url}/container_registries/changes`);
    url.search = new URLSearchParams({ since: String(since), limit: String(limit), origin: 'local', wait: String(wait) }).toString();
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'registry-db-federation/0.1' };
    if (this.o.key) headers.authorization = `Bearer ${this.o.key}`;
    // The long poll's wait, the peer's own catch-up (up to 2 s) and room for a slow network: for the whole
    // request, and for its headers (the client's own timeout is a probe's, far shorter than a long poll).
    const timeoutMs = (wait + 10) * 1000;
    const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), this.abort.signal]);
    return this.o.client.send({ url, headers, tls: {}, signal, timeoutMs, maxBodyBytes: MAX_PAGE_BYTES });
  }

  /** Writes the changes of a page; `listed` collects the ids present (a list). */
  private async apply(changes: Change[], listed: Set<string> | undefined): Promise<void> {
    for (const c of changes) {
      // Stopping: leave the page unfinished (its position is not saved; the next holder applies it again).
      if (this.stopped) throw new Error('the follower is stopping');
      let id: string;
      let doc: StoredRegistry | undefined;
      try {
        id = mirroredIdOf(this.name, c.container_registry_id);
        const origin: Origin = { peer: this.name, url: this.o.peer.url, revision: c.revision, synced_at: new Date().toISOString(), stale: false };
        if (c.type === 'upsert' && c.entry) doc = storedFromPeer(this.name, c.container_registry_id, c.entry, origin, this.o.maxEntryBytes);
      } catch (e) {
        // What this catalog cannot take does not stop the rest of the peer's feed: it is refused, and said.
        if (!(e instanceof PeerAnswerError)) throw e;
        await this.refuse(c.container_registry_id, e.message, listed);
        continue;
      }
      if (!doc) {
        listed?.delete(id);
        await this.remove(id);
        continue;
      }
      if (this.storeFailures?.id === id && this.storeFailures.count >= MAX_STORE_ATTEMPTS) {
        await this.refuse(c.container_registry_id, `this catalog's database refused it ${this.storeFailures.count} times (${this.state!.last_error ?? 'no reason given'})`, listed);
        this.storeFailures = undefined;
        continue;
      }
      try {
        await this.upsert(doc);
      } catch (e) {
        if (this.stopped) throw e;
        throw new EntryStoreError(id, e);
      }
      if (this.storeFailures?.id === id) this.storeFailures = undefined;
      listed?.add(id);
    }
  }

  /** Counts and logs a refused change of the peer, and removes what was stored (or listed) of its entry before. */
  private async refuse(peerId: string, reason: string, listed: Set<string> | undefined): Promise<void> {
    const state = this.state!;
    this.o.logger.warn('change of peer refused', { peer: this.name, id: peerId.slice(0, 200), reason });
    this.update({ rejected: (state.rejected ?? 0) + 1, last_rejection: reason.slice(0, 2000), last_rejection_at: new Date() });
    const id = mirroredIdOr(this.name, peerId);
    if (id === undefined) return;
    listed?.delete(id);
    await this.remove(id);
  }

  private async upsert(doc: StoredRegistry, retry = true): Promise<void> {
    const outcome = await this.o.writer.modify(doc._id, (cur): { kind: 'none'; result: 'missing' | 'same' } | { kind: 'replace'; next: StoredRegistry; result: 'replaced' } => {
      if (!cur) return { kind: 'none', result: 'missing' };
      if (sameMirror(cur, doc)) return { kind: 'none', result: 'same' };
      return { kind: 'replace', next: { ...doc }, result: 'replaced' };
    });
    if (outcome === 'same') return;
    this.writes++;
    if (outcome === 'replaced') return;
    try {
      await this.o.writer.create({ ...doc });
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
    const removed = await this.o.writer.modify(id, (cur) => (cur && originPeer(cur) === this.name ? { kind: 'delete', result: true } : { kind: 'none', result: false }));
    if (removed) this.writes++;
  }

  /** The peer answered: it is no longer stale. */
  private async reached(): Promise<void> {
    this.state!.last_success_at = new Date();
    if (this.state!.stale) await this.setStale(false);
  }

  /** Marks every entry of the peer stale (or not): one write per entry whose flag differs. */
  private async setStale(stale: boolean): Promise<void> {
    this.update({ stale });
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
    await this.flush();
  }

  private async failed(e: unknown): Promise<void> {
    const message = e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e);
    if (message !== this.state?.last_error) this.o.logger.warn('peer sync failed', { peer: this.name, error: message });
    if (!this.state) return;
    this.update({ last_error: message, last_error_at: new Date() });
    await this.flush();
    // The database took that write: an entry whose own write failed is refused after a few such rounds.
    if (e instanceof EntryStoreError) this.storeFailures = { id: e.id, count: this.storeFailures?.id === e.id ? this.storeFailures.count + 1 : 1 };
  }

  /** A page is stored up to `revision` (of `epoch`): the position moves, the last error is over. */
  private async stored(revision: number, epoch: string | undefined): Promise<void> {
    this.update({ revision, epoch, last_error: undefined, last_error_at: undefined });
    await this.flush();
  }

  private update(change: Partial<PeerState>): void {
    const state = this.state! as unknown as Record<string, unknown>;
    for (const [k, v] of Object.entries(change)) {
      if (sameValue(state[k], v)) continue;
      state[k] = v;
      this.dirty = true;
    }
  }

  /** Writes the state when it changed, or when the stored one is older than STATE_REFRESH_MS. */
  private async flush(): Promise<void> {
    if (!this.dirty && Date.now() - this.savedAt < STATE_REFRESH_MS) return;
    const { _id, ...rest } = this.state!;
    await this.states.replaceOne({ _id }, Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) as Omit<PeerState, '_id'>, { upsert: true });
    this.dirty = false;
    this.savedAt = Date.now();
  }
}

/** The id the peer's entry `peerId` has here, or undefined when it cannot have one. */
function mirroredIdOr(peer: string, peerId: unknown): string | undefined {
  try {
    return mirroredIdOf(peer, peerId);
  } catch {
    return undefined;
  }
}

const sameValue = (a: unknown, b: unknown): boolean => (a instanceof Date && b instanceof Date ? a.getTime() === b.getTime() : a === b);

/** `ms` less a random part of up to half: followers of one peer on several catalogs do not fall in step. */
const jitter = (ms: number): number => ms * (0.5 + Math.random() / 2);

/** Whether the stored mirror already holds the peer's state (the time it was synced aside). */
function sameMirror(cur: StoredRegistry, next: StoredRegistry): boolean {
  const strip = (d: StoredRegistry) => {
    const { revision: _r, container_registry_origin: o, ...rest } = d as StoredRegistry & { revision?: number };
    for (const k of Object.keys(rest)) if (k.startsWith('_')) delete (rest as Record<string, unknown>)[k];
    return canonical({ ...rest, o: o ? { ...o, synced_at: undefined } : undefined });
  };
  return strip(cur) === strip(next);
}
