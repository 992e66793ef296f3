/**
 * JSON request bodies: media type checked (415), size bounded (413), parse errors reported as 400
 * "malformed JSON", nesting depth bounded, and prototype-pollution keys refused anywhere in the body.
 */
import type { Request, RequestHandler } from 'express';
import { InputError, PayloadTooLargeError, UnsupportedMediaTypeError } from '../errors';
import { parseJsonText } from '../lib/json-shape';

function isJsonMediaType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

async function readBody(req: Request, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    throw new PayloadTooLargeError(`The request body is ${declared} bytes; the limit is ${limit} bytes.`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      req.unpipe();
      req.resume();
      throw new PayloadTooLargeError(`The request body is larger than the limit of ${limit} bytes.`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/**
 * Body parser for JSON routes. `optional` lets an empty body stand for `{}` (the query route).
 */
export function jsonBody(limit: number, opts: { optional?: boolean } = {}): RequestHandler {
  return async (req, _res, next) => {
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    if (!hasBody) {
      if (opts.optional) {
        req.body = {};
        return next();
      }
      throw new InputError('A JSON body is required.', [{ path: '/', message: 'is required' }]);
    }
    if (!isJsonMediaType(req.headers['content-type'])) {
      req.resume();
      throw new UnsupportedMediaTypeError(
        `Send the body as application/json (got ${req.headers['content-type'] ? `"${req.headers['content-type']}"` : 'no Content-Type'}).`,
      );
    }
    const raw = await readBody(req, limit);
    const text = raw.toString('utf8').replace(/^\uFEFF/, '');
    if (text.trim() === '' && opts.optional) {
      req.body = {};
      return next();
    }
    req.body = parseJsonText(text);
    next();
  };
}
