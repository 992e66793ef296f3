/**
 * The one place where errors become HTTP responses: RFC 9457 problem+json. Database outages become 503,
 * anything unexpected a 500 that is logged with its stack (and never shows internals to the client).
 */
import type { ErrorRequestHandler, Response } from 'express';
import { MongoBulkWriteError, MongoClientClosedError, MongoError, MongoExpiredSessionError, MongoNetworkError, MongoServerError, MongoServerSelectionError, MongoNotConnectedError, MongoTopologyClosedError } from 'mongodb';
import { AppError, InputError, ServiceUnavailableError, type FieldError } from '../errors';
import type { Problem } from '../generated';
import type { Logger } from '../logger';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

type ProblemFields = { slug: string; title: string; detail: string; errors?: FieldError[]; instance?: string; extensions?: Record<string, unknown> };

/** The RFC 9457 body of a problem (also used as one item's error inside a batch answer, e.g. POST /resolve). */
export function problemBody(status: number, p: ProblemFields): Problem {
  return {
    type: `/problems/${p.slug}`,
    title: p.title,
    status,
    detail: p.detail,
    ...(p.instance ? { instance: p.instance } : {}),
    ...(p.errors ? { errors: p.errors } : {}),
    ...(p.extensions ?? {}),
  };
}

/** The problem body of a typed error (a batch item's error). */
export function problemOf(err: AppError): Problem {
  return problemBody(err.status, { slug: err.slug, title: err.title, detail: err.message, errors: err.errors, extensions: err.extensions });
}

export function sendProblem(res: Response, status: number, p: ProblemFields): void {
  res.status(status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problemBody(status, p)));
}

/** True for driver errors that mean "the database cannot be reached right now". */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (
    err instanceof MongoServerSelectionError ||
    err instanceof MongoNetworkError ||
    err instanceof MongoNotConnectedError ||
    err instanceof MongoTopologyClosedError ||
    // The reconnect watchdog closes a stuck client: operations caught in flight end with the first, those
    // queued behind them with the second (their implicit session ended; the service starts no explicit one).
    err instanceof MongoClientClosedError ||
    err instanceof MongoExpiredSessionError
  ) {
    return true;
  }
  // A batch write cut off by a lost connection: the driver wraps the network error (as the error response).
  const wrapped = err instanceof MongoBulkWriteError ? (err.errorResponse as unknown) : undefined;
  if (wrapped instanceof Error && wrapped !== err) return isDatabaseUnavailable(wrapped);
  // Not exported by the driver: a checkout from the pool the close just shut, or one that waited too long.
  if (err instanceof MongoError && ['MongoPoolClosedError', 'MongoWaitQueueTimeoutError'].includes(err.name)) return true;
  // The driver lets a write on a socket the server already half-closed surface as a plain Node error
  // ("This socket has been ended by the other party", EPIPE), e.g. while the database shuts down.
  if (err instanceof Error && !(err instanceof MongoError) && ['EPIPE', 'ECONNRESET', 'ECONNREFUSED'].includes((err as NodeJS.ErrnoException).code ?? '')) return true;
  return err instanceof MongoError && (err.hasErrorLabel('RetryableWriteError') || err.hasErrorLabel('TransientTransactionError'));
}

/** MaxTimeMSExpired. */
function isTimeLimit(err: unknown): boolean {
  return err instanceof MongoError && (err.code === 50 || /time limit|MaxTimeMS/i.test(err.message));
}

/**
 * The database refused a $regex of the filter (Location51091): the filter passed our checks (JavaScript's
 * dialect) but not the server's (PCRE on MongoDB, Go's regexp on FerretDB), e.g. `\u0041` or `\cA`.
 */
function isInvalidRegex(err: unknown): boolean {
  return err instanceof MongoServerError && err.code === 51091;
}

/**
 * FerretDB v1 refuses some valid filters with NotImplemented (code 238), e.g. the regex option `x` or `$ne`
 * inside `$elemMatch`. They are valid input this database cannot run: a 400 that says so, not a 500.
 */
function isNotImplemented(err: unknown): boolean {
  return err instanceof MongoServerError && err.code === 238;
}

export function toAppError(err: unknown): AppError | undefined {
  if (err instanceof AppError) return err;
  if (isNotImplemented(err)) {
    return new InputError(`The database cannot run this filter: ${(err as Error).message}.`, [{ path: '/', message: 'uses an operator or option the embedded database (FerretDB v1) does not implement; rewrite the filter' }]);
  }
  if (isInvalidRegex(err)) {
    return new InputError(`The database cannot run a $regex of the filter: ${(err as Error).message}.`, [{ path: '/', message: 'a $regex of the filter is not valid for the database; use plain characters, classes and quantifiers' }]);
  }
  if (isDatabaseUnavailable(err)) return new ServiceUnavailableError('The database is unreachable; try again shortly.');
  if (isTimeLimit(err)) return new ServiceUnavailableError('The query exceeded its time limit; narrow the filter or lower the limit.', 1);
  return undefined;
}

export function problemMiddleware(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    if (res.headersSent) {
      logger.error('error after the response started', { err, path: req.path });
      res.destroy();
      return;
    }
    const known = toAppError(err);
    if (known) {
      for (const [k, v] of Object.entries(known.headers)) res.setHeader(k, v);
      if (known.status >= 500) logger.warn('request failed', { status: known.status, detail: known.message, path: req.path });
      sendProblem(res, known.status, { slug: known.slug, title: known.title, detail: known.message, errors: known.errors, extensions: known.extensions });
      return;
    }
    // Errors raised by Express itself or its dependencies that carry a 4xx status (e.g. URI decoding).
    const status = (err as { status?: number })?.status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      sendProblem(res, status, { slug: 'bad-request', title: 'Bad request', detail: String((err as Error).message ?? 'bad request') });
      return;
    }
    logger.error('unexpected error', { err, method: req.method, path: req.path });
    sendProblem(res, 500, { slug: 'internal-error', title: 'Internal server error', detail: 'An unexpected error occurred; it has been logged.' });
  };
}
