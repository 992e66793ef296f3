/**
 * A set of content digests at a fixed cost per digest, outside the JavaScript heap: each digest is kept as a
 * 32-byte key (`sha256:<64 lower-case hex>` decoded; any other algorithm or spelling hashed with SHA-256) in
 * 128 KB chunks, found through an open-addressing index of 32-bit entry numbers (load at most one half).
 * About 40 bytes per digest (a million: 32 MB of keys and 8 MB of index), where a Map of digest strings
 * to sizes cost about 150 bytes each on the heap the service caps at 256 MB.
 *
 * Every set of a process draws its memory from one MemoryBudget (STORAGE_DIGEST_MEMORY_MB): concurrent crawls
 * together never hold more than it. A set that cannot get memory throws DigestMemoryExhausted (the crawl
 * stops there, truncated); `release()` gives its memory back.
 *
 * The slot of a key mixes it with a seed drawn per set, so a registry cannot choose digests that all land
 * in one probe sequence.
 */
import { createHash, randomBytes } from 'node:crypto';
import { MemoryBudget } from '../lib/memory-budget';

export { MemoryBudget };

const KEY_WORDS = 8;
const CHUNK_KEYS = 4096;
const CHUNK_BYTES = CHUNK_KEYS * KEY_WORDS * 4;
const PREFIX = 'sha256:';
/** Lower-case hex digit → value; -1 for anything else. */
const HEX = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) HEX['0123456789abcdef'.charCodeAt(i)] = i;

export class DigestMemoryExhausted extends Error {
  constructor(readonly limit: number) {
    super(`the digest memory shared by concurrent storage refreshes (${Math.round(limit / 1048576)} MB, STORAGE_DIGEST_MEMORY_MB) is in use`);
  }
}

const INITIAL_SLOTS = 1024;

export class DigestSet {
  /** Keys, KEY_WORDS 32-bit words each, CHUNK_KEYS per chunk. */
  private chunks: Uint32Array[] = [];
  /** Slot → entry number + 1; 0 is an empty slot. */
  private index = new Uint32Array(INITIAL_SLOTS);
  private readonly seed = randomBytes(4).readUInt32LE(0);
  private readonly key = new Uint32Array(KEY_WORDS);
  private readonly keyBytes = Buffer.from(this.key.buffer);
  private count = 0;
  private held = 0;

  /** Without a budget the set is bounded only by its callers. */
  constructor(private readonly budget?: MemoryBudget) {
    this.held = this.index.byteLength;
    budget?.take(this.held, true);
  }

  get size(): number {
    return this.count;
  }

  /** Bytes held by the keys and the index (what a crawl's digests cost). */
  get bytes(): number {
    return this.chunks.length * CHUNK_BYTES + this.index.byteLength;
  }

  /** Gives the set's memory back to the budget; the set is not used after this. */
  release(): void {
    this.chunks = [];
    this.index = new Uint32Array(0);
    this.count = 0;
    this.budget?.give(this.held);
    this.held = 0;
  }

  private reserve(bytes: number): void {
    if (this.budget && !this.budget.take(bytes)) throw new DigestMemoryExhausted(this.budget.limit);
    this.held += bytes;
  }

  has(digest: string): boolean {
    this.load(digest);
    return this.find() >= 0;
  }

  /** Adds `digest`; true when it was not there before. */
  add(digest: string): boolean {
    this.load(digest);
    const at = this.find();
    if (at >= 0) return false;
    const n = this.count;
    const newChunk = n % CHUNK_KEYS === 0;
    // A new chunk, and the index doubling below: both taken from the budget before either is made.
    this.reserve((newChunk ? CHUNK_BYTES : 0) + ((n + 1) * 2 > this.index.length ? this.index.byteLength : 0));
    if (newChunk) this.chunks.push(new Uint32Array(CHUNK_KEYS * KEY_WORDS));
    this.chunks[this.chunks.length - 1]!.set(this.key, (n % CHUNK_KEYS) * KEY_WORDS);
    this.count++;
    if (this.count * 2 > this.index.length) this.grow();
    else this.index[~at] = n + 1;
    return true;
  }

  /** The 32-byte key of `digest` into this.key. */
  private load(digest: string): void {
    if (!this.loadSha256(digest)) createHash('sha256').update(digest, 'utf8').digest().copy(this.keyBytes);
  }

  /** `sha256:` and 64 lower-case hex digits, decoded by hand (a regular expression and Buffer.write cost more). */
  private loadSha256(digest: string): boolean {
    if (digest.length !== PREFIX.length + KEY_WORDS * 8 || !digest.startsWith(PREFIX)) return false;
    for (let w = 0, i = PREFIX.length; w < KEY_WORDS; w++) {
      let v = 0;
      for (const end = i + 8; i < end; i++) {
        const c = digest.charCodeAt(i);
        const x = c < 128 ? HEX[c]! : -1;
        if (x < 0) return false;
        v = (v << 4) | x;
      }
      this.key[w] = v;
    }
    return true;
  }

  private slot(words: Uint32Array, at: number): number {
    let h = this.seed;
    for (let w = at; w < at + KEY_WORDS; w++) h = Math.imul(h ^ words[w]!, 0x9e3779b1) ^ (h >>> 15);
    // murmur3's finaliser: every bit of h reaches the low bits the index uses.
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return h >>> 0;
  }

  /** The entry number of this.key, or ~slot of the empty slot where it would go. */
  private find(): number {
    const mask = this.index.length - 1;
    const key = this.key;
    for (let s = this.slot(key, 0) & mask; ; s = (s + 1) & mask) {
      const entry = this.index[s]!;
      if (entry === 0) return ~s;
      const n = entry - 1;
      const chunk = this.chunks[(n / CHUNK_KEYS) | 0]!;
      const at = (n % CHUNK_KEYS) * KEY_WORDS;
      let w = 0;
      while (w < KEY_WORDS && chunk[at + w] === key[w]) w++;
      if (w === KEY_WORDS) return n;
    }
  }

  /** Doubles the index and places every entry again. */
  private grow(): void {
    const index = new Uint32Array(this.index.length * 2);
    const mask = index.length - 1;
    for (let n = 0; n < this.count; n++) {
      let s = this.slot(this.chunks[(n / CHUNK_KEYS) | 0]!, (n % CHUNK_KEYS) * KEY_WORDS) & mask;
      while (index[s] !== 0) s = (s + 1) & mask;
      index[s] = n + 1;
    }
    this.index = index;
  }
}
