/**
 * Standard Webhooks signing (https://www.standardwebhooks.com/): secrets are `whsec_` + base64 of 24-64
 * random bytes; a delivery carries `webhook-id`, `webhook-timestamp` (seconds) and `webhook-signature:
 * v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, keyed with the decoded bytes of the secret.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { InputError } from '../errors';

export const SECRET_PREFIX = 'whsec_';
const MIN_BYTES = 24;
const MAX_BYTES = 64;

export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString('base64');
}

/** The key bytes of a secret; an InputError naming `secret` when it is not `whsec_` + base64 of 24-64 bytes. */
export function secretKey(secret: string): Buffer {
  const b64 = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : '';
  const key = Buffer.from(b64, 'base64');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || key.length < MIN_BYTES || key.length > MAX_BYTES || key.toString('base64').replace(/=+$/, '') !== b64.replace(/=+$/, '')) {
    throw new InputError(`The secret must be ${SECRET_PREFIX} followed by the base64 of ${MIN_BYTES} to ${MAX_BYTES} random bytes.`, [
      { path: '/secret', message: `must be ${SECRET_PREFIX} + base64 of ${MIN_BYTES}-${MAX_BYTES} bytes` },
    ]);
  }
  return key;
}

/** The three Standard Webhooks headers for one attempt. */
export function signedHeaders(key: Buffer, id: string, body: string, now = Date.now()): Record<string, string> {
  const timestamp = String(Math.floor(now / 1000));
  const signature = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${signature}` };
}
