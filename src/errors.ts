/**
 * The few typed errors of the service. Domain code throws these; the HTTP layer maps them to RFC 9457
 * problem+json in exactly one place (http/problem.ts).
 */
export interface FieldError {
  /** JSON Pointer (RFC 6901) into the request body, or the name of a query parameter or header. */
  path: string;
  message: string;
}

export abstract class AppError extends Error {
  abstract readonly status: number;
  abstract readonly slug: string;
  abstract readonly title: string;
  readonly errors?: FieldError[];
  readonly headers: Record<string, string> = {};
  /** Extension members of the problem document (RFC 9457 section 3.2), e.g. the current revision. */
  readonly extensions: Record<string, unknown> = {};

  constructor(detail: string, errors?: FieldError[]) {
    super(detail);
    this.name = new.target.name;
    if (errors && errors.length > 0) this.errors = errors;
  }
}

export class InputError extends AppError {
  readonly status = 400;
  readonly slug = 'invalid-request';
  readonly title = 'Invalid request';
}

export class MalformedJsonError extends AppError {
  readonly status = 400;
  readonly slug = 'malformed-json';
  readonly title = 'Malformed JSON';
}

export class UnauthorizedError extends AppError {
  readonly status = 401;
  readonly slug = 'unauthorized';
  readonly title = 'Unauthorized';
}

export class ForbiddenError extends AppError {
  readonly status = 403;
  readonly slug = 'forbidden';
  readonly title = 'Forbidden';
}

export class NotFoundError extends AppError {
  readonly status = 404;
  readonly slug = 'not-found';
  readonly title = 'Not found';
}

export class MethodNotAllowedError extends AppError {
  readonly status = 405;
  readonly slug = 'method-not-allowed';
  readonly title = 'Method not allowed';
  constructor(detail: string, allow: string[]) {
    super(detail);
    this.headers['Allow'] = allow.join(', ');
  }
}

/** A request body that did not arrive within HTTP_BODY_TIMEOUT_MS; the connection is closed after the answer. */
export class RequestTimeoutError extends AppError {
  readonly status = 408;
  readonly slug = 'request-timeout';
  readonly title = 'Request timeout';
  constructor(detail: string) {
    super(detail);
    this.headers['Connection'] = 'close';
  }
}

export class ConflictError extends AppError {
  readonly status = 409;
  readonly slug = 'conflict';
  readonly title = 'Conflict';
}

export class PreconditionFailedError extends AppError {
  readonly status = 412;
  readonly slug = 'precondition-failed';
  readonly title = 'Precondition failed';
}

export class PayloadTooLargeError extends AppError {
  readonly status = 413;
  readonly slug = 'payload-too-large';
  readonly title = 'Payload too large';
}

export class UnsupportedMediaTypeError extends AppError {
  readonly status = 415;
  readonly slug = 'unsupported-media-type';
  readonly title = 'Unsupported media type';
}

export class TooManyRequestsError extends AppError {
  readonly status = 429;
  readonly slug = 'too-many-requests';
  readonly title = 'Too many requests';
}

export class ServiceUnavailableError extends AppError {
  readonly status = 503;
  readonly slug = 'service-unavailable';
  readonly title = 'Service unavailable';
  constructor(detail: string, retryAfterSeconds = 5) {
    super(detail);
    this.headers['Retry-After'] = String(retryAfterSeconds);
  }
}

/** A change-feed position older than what is retained: the consumer lists again (SPEC 12). */
export class RevisionExpiredError extends AppError {
  readonly status = 410;
  readonly slug = 'revision-expired';
  readonly title = 'Revision expired';
  constructor(detail: string, revision: number) {
    super(detail, [{ path: 'since', message: 'is older than the retained history; list again from since=0' }]);
    this.extensions.revision = revision;
  }
}
