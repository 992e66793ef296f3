/**
 * JSON request bodies: media type and charset checked (415), size bounded (413), time bounded (408 after
 * HTTP_BODY_TIMEOUT_MS, through server.ts), bytes that are not UTF-8 refused (400 naming where they are),
 * parse errors reported as 400 "malformed JSON", nesting depth bounded, prototype-pollution keys and integers
 * JSON.parse would round refused anywhere in the body (lib/json-shape.ts).
 */
import type { Request, RequestHandler } from 'express';
import { InputError, PayloadTooLargeError, RequestTimeoutError, UnsupportedMediaTypeError } from '../errors';
import { pathAt } from '../lib/json-scan';
import { parseJsonText } from '../lib/json-shape';
import { hasBody, onBodyDeadline } from './server';

/** Charsets a JSON body may be labelled with (RFC 8259: JSON exchanged between systems is UTF-8). */
const UTF8_LABELS = new Set(['utf-8', 'utf8', 'us-ascii']);

/** The media type and the charset parameter of a Content-Type, lower-cased. */
function parseContentType(contentType: string): { type: string; charset?: string } {
  const [type = '', ...params] = contentType.split(';');
  let charset: string | undefined;
  for (const param of params) {
    const eq = param.indexOf('=');
    if (eq > 0 && param.slice(0, eq).trim().toLowerCase() === 'charset') charset = param.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1').toLowerCase();
  }
  return { type: type.trim().toLowerCase(), charset };
}

/** 415 unless the body is labelled as JSON, in UTF-8 (or unlabelled). */
function checkMediaType(contentType: string | undefined): void {
  const { type, charset } = parseContentType(contentType ?? '');
  if (type !== 'application/json' && !(type.startsWith('application/') && type.endsWith('+json'))) {
    throw new UnsupportedMediaTypeError(`Send the body as application/json (got ${contentType ? `"${contentType}"` : 'no Content-Type'}).`);
  }
  if (charset !== undefined && !UTF8_LABELS.has(charset)) {
    throw new UnsupportedMediaTypeError(`The body is labelled charset=${charset}; send JSON as UTF-8 (charset=utf-8, or no charset).`, [
      { path: 'Content-Type', message: `charset ${charset} is not supported; use utf-8` },
    ]);
  }
}

/** The whole body, at most `limit` bytes, or a 413, a 408 at the body deadline, a 400 when the client left. */
function readBody(req: Request, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    throw new PayloadTooLargeError(`The request body is ${declared} bytes; the limit is ${limit} bytes.`);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (err: unknown, body?: Buffer): void => {
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
      release();
      if (err) reject(err);
      else resolve(body!);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      req.resume(); // the rest is discarded (bounded by the body deadline)
      finish(new PayloadTooLargeError(`The request body is larger than the limit of ${limit} bytes.`));
    };
    const onEnd = (): void => finish(undefined, Buffer.concat(chunks, size));
    const onError = (e: Error): void => finish(e);
    const onClose = (): void => finish(new InputError('The client closed the connection before the request body was complete.'));
    const release = onBodyDeadline(req, (ms) =>
      finish(new RequestTimeoutError(`The request body was not complete ${ms} ms after its head (${size} bytes arrived); send the whole body at once. The connection is closed.`)),
    );
    req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The body as text (a leading BOM dropped), or a 400 naming the first bytes that are not UTF-8 and where they are. */
function decodeUtf8(raw: Buffer): string {
  try {
    return strictUtf8.decode(raw);
  } catch {
    // Where: decode with replacement and find the first U+FFFD that the body did not spell as EF BF BD.
    const lossy = new TextDecoder('utf-8', { ignoreBOM: true }).decode(raw);
    let byte = 0;
    let char = 0;
    for (const ch of lossy) {
      const cp = ch.codePointAt(0)!;
      if (cp === 0xfffd && !(raw[byte] === 0xef && raw[byte + 1] === 0xbf && raw[byte + 2] === 0xbd)) break;
      byte += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
      char += ch.length;
    }
    const bom = lossy.startsWith('\uFEFF') ? 1 : 0;
    const text = lossy.slice(bom);
    let path = '/';
    try {
      JSON.parse(text);
      path = pathAt(text, char - bom);
    } catch {
      // Not JSON even with the bytes replaced: the body as a whole.
    }
    throw new InputError(`The request body is not valid UTF-8: byte ${byte} (0x${raw[byte]!.toString(16).padStart(2, '0')}) starts no UTF-8 character (at ${path}). Send JSON as UTF-8.`, [
      { path, message: `holds bytes that are not UTF-8 (byte ${byte} of the body)` },
    ]);
  }
}

/**
 * Body parser for JSON routes. `optional` lets an empty body stand for `{}` (the query route).
 */
export function jsonBody(limit: number, opts: { optional?: boolean } = {}): RequestHandler {
  return async (req, _res, next) => {
    if (!hasBody(req)) {
      if (opts.optional) {
        req.body = {};
        return next();
      }
      throw new InputError('A JSON body is required.', [{ path: '/', message: 'is required' }]);
    }
    try {
      checkMediaType(req.headers['content-type']);
    } catch (e) {
      req.resume();
      throw e;
    }
    const text = decodeUtf8(await readBody(req, limit));
    if (text.trim() === '' && opts.optional) {
      req.body = {};
      return next();
    }
    req.body = parseJsonText(text);
    next();
  };
}
