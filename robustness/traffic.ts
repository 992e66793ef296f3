/**
 * The clients of a robustness run: a few workers, each doing one operation at a time on a small key space
 * (a few slots, each a name shared by a few entry ids), so that operations collide: creates race for one
 * name, updates race with and without If-Match, deletes race with updates, reads and queries run among
 * them. Every operation is recorded with its invocation and response times and what it was answered.
 * Every create and update writes a marker of its own (`container_registry_metadata.op`), which tells the
 * checkers whether a write whose answer was lost happened.
 */
import type { Operation, OpKind } from './history';
import { snap } from './history';
import { between, pick, send, type Answer, type Clock } from './http';
import { sleep } from './processes';

export interface Slot {
  name: string;
  ids: string[];
  /** The registry its entries point at (probed by the sweeps). */
  url: string;
}

export interface TrafficOptions {
  clients: number;
  replicas: string[];
  slots: Slot[];
  tags: string[];
  clock: Clock;
  timeoutMs: number;
  /** Pause between one worker's operations. */
  thinkMs: [number, number];
}

/** Deletes are rarer than creates (most creates lose the race for the name), so the slots hold entries most of the time. */
const WEIGHTS: Array<[OpKind | 'update-if-match' | 'delete-if-match', number]> = [
  ['get', 18],
  ['query', 10],
  ['create', 14],
  ['update', 24],
  ['update-if-match', 18],
  ['delete', 5],
  ['delete-if-match', 5],
];
const TOTAL = WEIGHTS.reduce((s, [, w]) => s + w, 0);

function chooseKind(): (typeof WEIGHTS)[number][0] {
  let x = Math.random() * TOTAL;
  for (const [k, w] of WEIGHTS) if ((x -= w) < 0) return k;
  return 'get';
}

/** A replica that refused a connection is left alone this long (it is down: killed, starting again). */
const DOWN_MS = 500;

export class Traffic {
  readonly operations: Operation[] = [];
  private stopped = false;
  private workers: Promise<void>[] = [];
  private readonly downUntil: number[] = [];

  constructor(private readonly o: TrafficOptions) {}

  start(): void {
    for (let c = 0; c < this.o.clients; c++) this.workers.push(this.worker(c));
  }

  /** Stops the workers; resolves once their last operations are answered (or timed out). */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.workers);
  }

  private async worker(client: number): Promise<void> {
    /** The version this client last saw of each entry (its If-Match), and which entry of each slot it last saw alive. */
    const seen = new Map<string, number>();
    const alive = new Map<number, string>();
    for (let n = 1; !this.stopped; n++) {
      const op = await this.one(client, n, seen, alive);
      this.operations.push(op);
      await sleep(between(...this.o.thinkMs));
    }
  }

  private async one(client: number, n: number, seen: Map<string, number>, alive: Map<number, string>): Promise<Operation> {
    const slotIndex = Math.floor(Math.random() * this.o.slots.length);
    const slot = this.o.slots[slotIndex]!;
    const replica = this.pickReplica();
    const base = this.o.replicas[replica]!;
    const choice = chooseKind();
    const kind: OpKind = choice === 'update-if-match' ? 'update' : choice === 'delete-if-match' ? 'delete' : choice;
    // Creates pick any id (they race for the name); the others mostly the entry last seen alive.
    const id = kind !== 'create' && alive.has(slotIndex) && Math.random() < 0.75 ? alive.get(slotIndex)! : pick(slot.ids);
    const op: Operation = { op: `c${client}-${n}`, client, slot: slotIndex, replica, kind, call: 0, ret: null, status: 0 };
    if (kind !== 'query') op.target = id;
    if (choice.endsWith('if-match')) op.ifMatch = seen.get(id) ?? 1 + Math.floor(Math.random() * 3);
    const headers: Record<string, string> = op.ifMatch !== undefined ? { 'If-Match': `"${op.ifMatch}"` } : {};
    const [method, path, body] = this.request(op, slot, id);
    op.call = this.o.clock.now();
    const answer = await send(base + path, method, body, this.o.timeoutMs, headers);
    this.record(op, answer);
    if (answer.error === 'ECONNREFUSED') this.downUntil[replica] = Date.now() + DOWN_MS;
    if (op.entry) {
      seen.set(id, op.entry.version);
      alive.set(slotIndex, id);
    } else if (op.status === 404 || (op.kind === 'delete' && op.status === 204)) alive.delete(slotIndex);
    return op;
  }

  /** A replica chosen at random among those not known to be down (any, when all are). */
  private pickReplica(): number {
    const all = this.o.replicas.map((_, i) => i);
    const up = all.filter((i) => (this.downUntil[i] ?? 0) <= Date.now());
    return pick(up.length > 0 ? up : all);
  }

  /** The request of `op` (and the marker, tags it writes, set on `op`). */
  private request(op: Operation, slot: Slot, id: string): [string, string, unknown] {
    const marker = op.op;
    switch (op.kind) {
      case 'create': {
        op.marker = marker;
        op.tags = this.o.tags.filter(() => Math.random() < 0.25);
        const body = { container_registry_id: id, container_registry_name: slot.name, container_registry_public_url: slot.url, container_registry_tags: op.tags, container_registry_metadata: { op: marker } };
        return ['POST', '/container_registry', body];
      }
      case 'update':
        return ['PUT', `/container_registry/${id}`, this.updateBody(op, marker)];
      case 'delete':
        return ['DELETE', `/container_registry/${id}`, undefined];
      case 'get':
        return ['GET', `/container_registry/${id}`, undefined];
      case 'query':
        op.name = slot.name;
        return ['POST', '/container_registries?limit=20', { container_registry_name: slot.name }];
    }
  }

  /** One of four update forms: $set of the marker, the marker as a plain field, $addToSet of a tag, or both. */
  private updateBody(op: Operation, marker: string): unknown {
    const tag = pick(this.o.tags);
    switch (Math.floor(Math.random() * 4)) {
      case 0:
        op.marker = marker;
        return { $set: { 'container_registry_metadata.op': marker } };
      case 1:
        op.marker = marker;
        return { container_registry_metadata: { op: marker } };
      case 2:
        op.addTags = [tag];
        return { $addToSet: { container_registry_tags: tag } };
      default:
        op.marker = marker;
        op.addTags = [tag];
        return { $set: { 'container_registry_metadata.op': marker }, $addToSet: { container_registry_tags: { $each: [tag] } } };
    }
  }

  private record(op: Operation, a: Answer): void {
    op.ret = a.status === 0 ? null : this.o.clock.now();
    op.status = a.status;
    if (a.error) op.error = a.error;
    if (a.status === 0 && a.error === 'ECONNREFUSED') op.ret = this.o.clock.now();
    // Reads served from a replica's view say as of which revision (a GET's 404 too).
    const r = a.headers?.get('x-catalog-revision');
    if (r && (op.kind === 'query' || op.kind === 'get')) op.catalogRevision = Number(r);
    if (a.status < 200 || a.status >= 300) return;
    if (op.kind === 'query') {
      op.items = Array.isArray(a.body) ? (a.body as Array<Record<string, unknown>>).map(snap) : [];
    } else if (op.kind !== 'delete' && a.body && typeof a.body === 'object') op.entry = snap(a.body as Record<string, unknown>);
  }
}
