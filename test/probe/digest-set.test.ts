/** The storage crawl's compact digest set behaves as a Set of digest strings, at a fixed cost per digest. */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { DigestMemoryExhausted, DigestSet, MemoryBudget } from '../../src/probe/digest-set';

const sha = (i: number): string => `sha256:${createHash('sha256').update(String(i)).digest('hex')}`;

test('When digests of any spelling are added and looked up, then the set answers as a Set of strings does', () => {
  const digest = fc.oneof(
    fc.stringMatching(/^[0-9a-f]{64}$/).map((h) => `sha256:${h}`),
    fc.constantFrom(sha(1), sha(2), sha(1).toUpperCase(), 'sha512:abc', 'sha256:' + '0'.repeat(63) + 'g', 'sha256:'),
    fc.string({ maxLength: 80 }),
  );
  fc.assert(
    fc.property(fc.array(digest, { maxLength: 200 }), fc.array(digest, { maxLength: 50 }), (added, probed) => {
      const set = new DigestSet();
      const reference = new Set<string>();
      for (const d of added) {
        expect(set.add(d)).toBe(!reference.has(d));
        reference.add(d);
      }
      expect(set.size).toBe(reference.size);
      for (const d of [...probed, ...added]) expect(set.has(d)).toBe(reference.has(d));
    }),
  );
});

test('When 200,000 distinct digests are added (several chunks, index grown many times), then each is found once and costs about 40 bytes', () => {
  const set = new DigestSet();
  const digests = Array.from({ length: 200_000 }, (_, i) => sha(i));
  expect(digests.filter((d) => set.add(d)).length).toBe(200_000);
  expect(digests.filter((d, i) => i % 7 === 0 && set.add(d)).length).toBe(0);
  expect(set.has(sha(200_001))).toBe(false);
  expect(set.size).toBe(200_000);
  expect(set.bytes / set.size).toBeLessThan(64);
});

test('When sets share a memory budget, then together they never hold more than it, a set that cannot grow says so, and released memory can be used again', () => {
  const budget = new MemoryBudget(1024 * 1024);
  const a = new DigestSet(budget);
  const b = new DigestSet(budget);
  let added = 0;
  expect(() => {
    for (let i = 0; ; i++) if (a.add(sha(i))) added++;
  }).toThrow(DigestMemoryExhausted);
  expect(added).toBeGreaterThan(10_000);
  expect(a.size).toBe(added);
  expect(budget.used).toBeLessThanOrEqual(budget.limit);
  expect(() => {
    for (let i = 0; i < 10_000; i++) b.add(sha(-i - 1));
  }).toThrow(DigestMemoryExhausted);
  a.release();
  for (let i = 0; i < 10_000; i++) b.add(sha(-i - 1));
  expect(b.size).toBe(10_000);
  expect(budget.peak).toBeLessThanOrEqual(budget.limit);
  b.release();
  expect(budget.used).toBe(0);
});
