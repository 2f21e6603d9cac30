/**
 * The one registry of error codes. Every failure that leaves Continuum (HTTP body, CLI line, invocation
 * record) carries one of these codes. `actor` says who must act to fix it; `retryable` whether the same
 * request may succeed later unchanged. docs/errors.md is checked against this table by a test.
 */

export type ErrorActor = 'caller' | 'function' | 'platform';

export interface ErrorSpec {
  readonly status: number;
  readonly retryable: boolean;
  readonly actor: ErrorActor;
  readonly summary: string;
}

export const ERROR_CODES = {
  bad_request: { status: 400, retryable: false, actor: 'caller', summary: 'The request is malformed or fails validation.' },
  bad_name: { status: 400, retryable: false, actor: 'caller', summary: 'A name does not match [a-z][a-z0-9-]{0,62}.' },
  bad_bundle: { status: 400, retryable: false, actor: 'caller', summary: 'The uploaded code or archive cannot be built or is unsafe.' },
  bad_argument: { status: 500, retryable: false, actor: 'function', summary: 'Function code passed an argument that cannot cross the sandbox boundary.' },
  payload_too_large: { status: 413, retryable: false, actor: 'caller', summary: 'A request body exceeds its size limit.' },
  unauthorized: { status: 401, retryable: false, actor: 'caller', summary: 'No valid token was presented.' },
  forbidden: { status: 403, retryable: false, actor: 'caller', summary: 'The token does not allow this operation.' },
  not_found: { status: 404, retryable: false, actor: 'caller', summary: 'No such resource.' },
  method_not_allowed: { status: 405, retryable: false, actor: 'caller', summary: 'The route does not accept this method.' },
  conflict: { status: 409, retryable: false, actor: 'caller', summary: 'The resource already exists or changed concurrently.' },
  unsupported_media_type: { status: 415, retryable: false, actor: 'caller', summary: 'The request body has a content type this route does not accept.' },
  timeout: { status: 504, retryable: true, actor: 'function', summary: 'The invocation exceeded its wall-clock timeout.' },
  cpu_limit: { status: 504, retryable: false, actor: 'function', summary: 'The invocation exceeded its CPU-time limit.' },
  memory_limit: { status: 500, retryable: false, actor: 'function', summary: 'The instance exceeded its memory limit.' },
  pids_limit: { status: 500, retryable: false, actor: 'function', summary: 'The instance exceeded its process limit.' },
  disk_limit: { status: 500, retryable: false, actor: 'function', summary: 'The instance exceeded its disk limit.' },
  output_too_large: { status: 502, retryable: false, actor: 'function', summary: 'The function response exceeds the response size limit.' },
  subrequest_limit: { status: 500, retryable: false, actor: 'function', summary: 'The invocation made more subrequests than allowed.' },
  call_depth_exceeded: { status: 508, retryable: false, actor: 'function', summary: 'A chain of function-to-function calls went deeper than the call-depth limit (a loop).' },
  egress_denied: { status: 500, retryable: false, actor: 'function', summary: 'Outbound network access is not granted to this function.' },
  unsupported_api: { status: 500, retryable: false, actor: 'function', summary: 'The function used an API its tier does not provide.' },
  quota_exceeded: { status: 429, retryable: true, actor: 'caller', summary: 'A quota of the caller is exhausted.' },
  rate_limited: { status: 429, retryable: true, actor: 'caller', summary: 'Too many requests; retry after the indicated delay.' },
  overloaded: { status: 503, retryable: true, actor: 'platform', summary: 'No instance capacity became free within the wait bound.' },
  instance_crashed: { status: 502, retryable: true, actor: 'platform', summary: 'The instance serving the invocation died.' },
  function_error: { status: 500, retryable: false, actor: 'function', summary: 'The function threw or returned an invalid result.' },
  unavailable: { status: 503, retryable: true, actor: 'platform', summary: 'A component needed for this request is not available on this node.' },
  internal: { status: 500, retryable: true, actor: 'platform', summary: 'An unexpected platform failure.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/** The wire shape of every error: plain data, safe to cross processes and sandbox boundaries. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; retryable: boolean; details?: ErrorDetails };
}

export interface ErrorDetails {
  /** JSON pointer to the offending field, for validation errors. */
  pointer?: string;
  /** Source location, for build errors. */
  file?: string;
  line?: number;
  column?: number;
  /** The limit that was hit, in its unit (bytes, ms, count). */
  limit?: number;
}

export class ContinuumError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails | undefined;

  constructor(code: ErrorCode, message: string, details?: ErrorDetails, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ContinuumError';
    this.code = code;
    this.details = details;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  get retryable(): boolean {
    return ERROR_CODES[this.code].retryable;
  }

  toBody(): ErrorBody {
    return errorBody(this.code, this.message, this.details);
  }
}

export function errorBody(code: ErrorCode, message: string, details?: ErrorDetails): ErrorBody {
  const body: ErrorBody = { error: { code, message, retryable: ERROR_CODES[code].retryable } };
  if (details && Object.keys(details).length > 0) body.error.details = { ...details };
  return body;
}

/** Any thrown value → a ContinuumError; unknown failures become `internal` without leaking their text. */
export function toContinuumError(err: unknown): ContinuumError {
  if (err instanceof ContinuumError) return err;
  return new ContinuumError('internal', 'internal error', undefined, { cause: err });
}

/** Rebuild an error that crossed a process boundary as plain data. */
export function fromErrorBody(body: unknown): ContinuumError {
  const e = (body as ErrorBody | undefined)?.error;
  if (e && isErrorCode(e.code) && typeof e.message === 'string') return new ContinuumError(e.code, e.message, e.details);
  return new ContinuumError('internal', 'malformed error body');
}
