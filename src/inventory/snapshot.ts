/**
 * One registry's inventory in memory, packed for /resolve (SPEC 19): a few typed arrays and buffers per
 * registry instead of an object per tag, about 90 bytes a tag, nearly all of it outside the JavaScript heap
 * (the service caps the heap at 256 MB; a registry of 100,000 tags is about 9 MB here).
 *
 *   keys      `repository \0 tag` of every row, UTF-8, concatenated in (repository, tag) order; `offsets`
 *             says where each starts. A lookup is a binary search comparing bytes in place (Buffer.compare).
 *   digests   32 bytes per row: a `sha256:` digest decoded; any other digest is kept as text on the side.
 *   media     a byte per row: its media type's number in a per-registry table (0: none).
 *   platforms two bytes per row: its platform list's number in a per-registry table (0: not an index).
 *   byDigest  an open-addressing table of row numbers keyed by digest (a digest reference is one probe).
 *
 * Built once from rows that come in order (src/inventory/loader.ts reads them from the repository), then
 * read only. Pure: no database.
 */
import type { InventoryRow } from '../probe/types';
import type { HeldManifest, RegistryInventory } from '../resolve/presence';

const DIGEST_BYTES = 32;
const SHA256 = /^sha256:[0-9a-f]{64}$/;
/** Rows a table of media types or platform lists can number (past it: recorded as none). */
const MAX_MEDIA_TYPES = 255;
const MAX_PLATFORM_SETS = 65535;

/** The byte cost of a registry of `rows` rows whose keys take `keyBytes` (what the memory budget is asked for). */
export function snapshotBytes(rows: number, keyBytes: number): number {
  return keyBytes + rows * (4 + DIGEST_BYTES + 1 + 2 + 1 + 8) + 256;
}

export interface SnapshotMeta {
  registryId: string;
  generation: number;
  observedAt: string;
  truncated: boolean;
}

/** A typed array of at least `n` elements holding `a`'s (doubling, so appends cost amortised O(1)). */
function grown<T extends Uint8Array | Uint16Array | Uint32Array>(a: T, n: number, make: (size: number) => T): T {
  if (n <= a.length) return a;
  const b = make(Math.max(n, a.length * 2));
  b.set(a);
  return b;
}

/** Collects rows in order into growing typed arrays (no object per row) and packs them (build). */
export class SnapshotBuilder {
  private keys: Buffer;
  private keyBytes = 0;
  private offsets: Uint32Array;
  private digests: Buffer;
  private readonly digestTexts = new Map<number, string>();
  private hasDigest: Uint8Array;
  private media: Uint8Array;
  private readonly mediaTypes: string[] = [''];
  private readonly mediaCodes = new Map<string, number>();
  private platforms: Uint16Array;
  private readonly platformSets: string[][] = [[]];
  private readonly platformCodes = new Map<string, number>();
  private rows = 0;

  /** `expected`: the rows the state says there are (the arrays start at that size). */
  constructor(
    private readonly meta: SnapshotMeta,
    expected = 16,
  ) {
    const n = Math.max(1, expected);
    this.keys = Buffer.allocUnsafe(n * 40);
    this.offsets = new Uint32Array(n + 1);
    this.digests = Buffer.alloc(n * DIGEST_BYTES);
    this.hasDigest = new Uint8Array(n);
    this.media = new Uint8Array(n);
    this.platforms = new Uint16Array(n);
  }

  add(row: InventoryRow): void {
    const i = this.rows;
    const key = `${row.repository}\0${row.tag}`;
    const length = Buffer.byteLength(key, 'utf8');
    if (this.keyBytes + length > this.keys.length) {
      const keys = Buffer.allocUnsafe(Math.max(this.keyBytes + length, this.keys.length * 2));
      this.keys.copy(keys, 0, 0, this.keyBytes);
      this.keys = keys;
    }
    this.keyBytes += this.keys.write(key, this.keyBytes, 'utf8');
    this.offsets = grown(this.offsets, i + 2, (n) => new Uint32Array(n));
    this.offsets[i + 1] = this.keyBytes;
    if (this.digests.length < (i + 1) * DIGEST_BYTES) {
      const digests = Buffer.alloc(this.digests.length * 2);
      this.digests.copy(digests);
      this.digests = digests;
    }
    if (row.digest !== null && SHA256.test(row.digest)) this.digests.write(row.digest.slice(7), i * DIGEST_BYTES, 'hex');
    else if (row.digest !== null) this.digestTexts.set(i, row.digest);
    this.hasDigest = grown(this.hasDigest, i + 1, (n) => new Uint8Array(n));
    this.hasDigest[i] = row.digest !== null ? 1 : 0;
    this.media = grown(this.media, i + 1, (n) => new Uint8Array(n));
    this.media[i] = this.code(this.mediaCodes, this.mediaTypes, row.media_type, row.media_type, MAX_MEDIA_TYPES);
    this.platforms = grown(this.platforms, i + 1, (n) => new Uint16Array(n));
    this.platforms[i] = this.code(this.platformCodes, this.platformSets, row.platforms && row.platforms.join(' '), row.platforms, MAX_PLATFORM_SETS);
    this.rows++;
  }

  /** The number of `value` in `table` (added when new and there is room); 0 for null or no room. */
  private code<T>(codes: Map<string, number>, table: T[], key: string | null, value: T | null, max: number): number {
    if (key === null || value === null) return 0;
    let c = codes.get(key);
    if (c === undefined) {
      if (table.length > max) return 0;
      c = table.length;
      table.push(value);
      codes.set(key, c);
    }
    return c;
  }

  /** Bytes the packed snapshot will take. */
  get bytes(): number {
    return snapshotBytes(this.rows, this.keyBytes);
  }

  /** The snapshot, its arrays copied to their exact sizes. */
  build(): InventorySnapshot {
    const n = this.rows;
    return new InventorySnapshot(this.meta, {
      keys: Buffer.from(this.keys.subarray(0, this.keyBytes)),
      offsets: this.offsets.slice(0, n + 1),
      digests: Buffer.from(this.digests.subarray(0, n * DIGEST_BYTES)),
      digestTexts: this.digestTexts,
      hasDigest: this.hasDigest.slice(0, n),
      media: this.media.slice(0, n),
      mediaTypes: this.mediaTypes,
      platforms: this.platforms.slice(0, n),
      platformSets: this.platformSets,
    });
  }
}

interface Packed {
  keys: Buffer;
  offsets: Uint32Array;
  digests: Buffer;
  digestTexts: Map<number, string>;
  hasDigest: Uint8Array;
  media: Uint8Array;
  mediaTypes: string[];
  platforms: Uint16Array;
  platformSets: string[][];
}

export class InventorySnapshot implements RegistryInventory {
  readonly registryId: string;
  readonly generation: number;
  readonly observedAt: string;
  readonly truncated: boolean;
  readonly rows: number;
  readonly bytes: number;
  private readonly byDigest: Uint32Array;

  constructor(
    meta: SnapshotMeta,
    private readonly p: Packed,
  ) {
    this.registryId = meta.registryId;
    this.generation = meta.generation;
    this.observedAt = meta.observedAt;
    this.truncated = meta.truncated;
    this.rows = p.offsets.length - 1;
    this.bytes = snapshotBytes(this.rows, p.keys.length);
    this.byDigest = this.digestTable();
  }

  private digestTable(): Uint32Array {
    let size = 16;
    while (size < this.rows * 2) size *= 2;
    const table = new Uint32Array(size);
    for (let i = 0; i < this.rows; i++) {
      if (this.p.hasDigest[i] === 0) continue;
      let s = this.slot(this.digestKey(i)) & (size - 1);
      while (table[s] !== 0) s = (s + 1) & (size - 1);
      table[s] = i + 1;
    }
    return table;
  }

  /** The 32 bytes a row's digest is looked up by (a non-sha256 digest: its text, hashed into the slot only). */
  private digestKey(i: number): Buffer {
    const text = this.p.digestTexts.get(i);
    return text !== undefined ? Buffer.from(text) : this.p.digests.subarray(i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES);
  }

  private slot(key: Buffer): number {
    // Digests are uniformly distributed: their first bytes are a hash already. Text digests are mixed by FNV.
    if (key.length === DIGEST_BYTES) return key.readUInt32LE(0);
    let h = 0x811c9dc5;
    for (const b of key) h = Math.imul(h ^ b, 0x01000193);
    return h >>> 0;
  }

  /** The digest of row `i` as text. */
  private digestAt(i: number): string | null {
    if (this.p.hasDigest[i] === 0) return null;
    return this.p.digestTexts.get(i) ?? `sha256:${this.p.digests.toString('hex', i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES)}`;
  }

  /** Row `i` as stored. */
  row(i: number): InventoryRow {
    const key = this.p.keys.toString('utf8', this.p.offsets[i]!, this.p.offsets[i + 1]!);
    const nul = key.indexOf('\0');
    return { repository: key.slice(0, nul), tag: key.slice(nul + 1), ...this.manifestAt(i) };
  }

  private manifestAt(i: number): HeldManifest {
    const m = this.p.media[i]!;
    const pl = this.p.platforms[i]!;
    return { digest: this.digestAt(i), media_type: m === 0 ? null : this.p.mediaTypes[m]!, platforms: pl === 0 ? null : this.p.platformSets[pl]! };
  }

  /** The first row whose key is at or after `key` (rows.length when none). */
  private lowerBound(key: Buffer): number {
    let lo = 0;
    let hi = this.rows;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.p.keys.compare(key, 0, key.length, this.p.offsets[mid]!, this.p.offsets[mid + 1]!) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Rows [start, end) of `repository`. */
  repositoryRange(repository: string): [number, number] {
    const start = this.lowerBound(Buffer.from(`${repository}\0`, 'utf8'));
    const end = this.lowerBound(Buffer.from(`${repository}\x01`, 'utf8'));
    return [start, end];
  }

  hasRepository(repository: string): boolean {
    const [start, end] = this.repositoryRange(repository);
    return end > start;
  }

  tag(repository: string, tag: string): HeldManifest | undefined {
    const key = Buffer.from(`${repository}\0${tag}`, 'utf8');
    const i = this.lowerBound(key);
    if (i >= this.rows || this.p.keys.compare(key, 0, key.length, this.p.offsets[i]!, this.p.offsets[i + 1]!) !== 0) return undefined;
    return this.manifestAt(i);
  }

  withDigest(repository: string, digest: string): HeldManifest | undefined {
    const sha = SHA256.test(digest);
    const key = sha ? Buffer.from(digest.slice(7), 'hex') : Buffer.from(digest);
    const [start, end] = this.repositoryRange(repository);
    if (end === start) return undefined;
    const mask = this.byDigest.length - 1;
    for (let s = this.slot(key) & mask; this.byDigest[s] !== 0; s = (s + 1) & mask) {
      const i = this.byDigest[s]! - 1;
      if (i < start || i >= end) continue;
      const same = sha ? !this.p.digestTexts.has(i) && this.p.digests.compare(key, 0, DIGEST_BYTES, i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES) === 0 : this.p.digestTexts.get(i) === digest;
      if (same) return this.manifestAt(i);
    }
    return undefined;
  }

  forEachRow(visit: (repository: string, tag: string, digest: string | null) => void): void {
    for (let i = 0; i < this.rows; i++) {
      const row = this.row(i);
      visit(row.repository, row.tag, row.digest);
    }
  }
}
