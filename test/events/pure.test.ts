/** The pure pieces of webhooks and cadence: backoff bounds, event ids, secrets, Retry-After parsing. */
import { backoffMs } from '../../src/events/deliverer';
import { eventId } from '../../src/events/events';
import { generateSecret, secretKey } from '../../src/events/signing';
import { retryAfter } from '../../src/probe/probe';

test('When attempts fail in a row, then the delay doubles from the minimum up to the cap, jittered between half and all of it', () => {
  for (let attempt = 1; attempt <= 30; attempt++) {
    const d = Math.min(600_000, 1000 * 2 ** (attempt - 1));
    expect(backoffMs(attempt, 1000, 600_000, () => 0)).toBe(d / 2);
    expect(backoffMs(attempt, 1000, 600_000, () => 1)).toBe(d);
  }
});

test('When an event id is derived, then it depends on subscription, revision and type only', () => {
  expect(eventId('s', 7, 'registry.created')).toBe(eventId('s', 7, 'registry.created'));
  expect(new Set([eventId('s', 7, 'registry.created'), eventId('s', 8, 'registry.created'), eventId('t', 7, 'registry.created'), eventId('s', 7, 'registry.updated')]).size).toBe(4);
});

test('When a secret is given, then only whsec_ + base64 of 24 to 64 bytes is accepted', () => {
  expect(secretKey(generateSecret())).toHaveLength(32);
  expect(secretKey(`whsec_${Buffer.alloc(24, 1).toString('base64')}`)).toHaveLength(24);
  expect(secretKey(`whsec_${Buffer.alloc(64, 1).toString('base64')}`)).toHaveLength(64);
  for (const bad of [`whsec_${Buffer.alloc(23, 1).toString('base64')}`, `whsec_${Buffer.alloc(65, 1).toString('base64')}`, 'whsec_!!!!', Buffer.alloc(32).toString('base64'), '']) {
    expect(() => secretKey(bad)).toThrow(/whsec_/);
  }
});

test('When Retry-After is seconds or an HTTP date, then the time it names is kept (at most a day ahead); otherwise none', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  expect(retryAfter('120', now)).toBe('2026-01-01T00:02:00.000Z');
  expect(retryAfter('Thu, 01 Jan 2026 01:00:00 GMT', now)).toBe('2026-01-01T01:00:00.000Z');
  expect(retryAfter('999999999', now)).toBe('2026-01-02T00:00:00.000Z');
  expect(retryAfter('0', now)).toBeNull();
  expect(retryAfter('soon', now)).toBeNull();
  expect(retryAfter(undefined, now)).toBeNull();
});
