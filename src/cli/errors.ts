/**
 * How the CLI fails: one line (or one JSON error body with --json), never a stack trace, and an exit code
 * that CI can trust: 0 ok, 1 the user must act (bad input, bad config, their function failed), 2 the platform
 * or the network failed.
 */
import { ERROR_CODES, isErrorCode, type ErrorBody, type ErrorCode, type ErrorDetails } from '../core/errors.ts';

export const EXIT_OK = 0;
export const EXIT_USER = 1;
export const EXIT_PLATFORM = 2;
export type ExitCode = typeof EXIT_OK | typeof EXIT_USER | typeof EXIT_PLATFORM;

/** A failure the CLI reports and exits on. `code` comes from the core registry so --json output is stable. */
export class CliError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: ExitCode;
  readonly retryable: boolean;
  readonly details: ErrorDetails | undefined;
  /** HTTP status when the failure came from the API. */
  readonly status: number | undefined;

  constructor(code: ErrorCode, message: string, opts: { exitCode?: ExitCode; retryable?: boolean; details?: ErrorDetails; status?: number; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'CliError';
    this.code = code;
    this.exitCode = opts.exitCode ?? exitCodeFor(code, opts.status ?? ERROR_CODES[code].status);
    this.retryable = opts.retryable ?? ERROR_CODES[code].retryable;
    this.details = opts.details;
    this.status = opts.status;
  }

  toBody(): ErrorBody {
    const body: ErrorBody = { error: { code: this.code, message: this.message, retryable: this.retryable } };
    if (this.details && Object.keys(this.details).length > 0) body.error.details = { ...this.details };
    return body;
  }
}

/** A caller-side mistake detected by the CLI itself (bad flag, bad file, bad manifest). */
export function userError(message: string, details?: ErrorDetails, code: ErrorCode = 'bad_request'): CliError {
  return new CliError(code, message, { exitCode: EXIT_USER, details });
}

/**
 * Exit code for an error code from the API. The registry says who must act: the caller or the function's
 * author → 1; the platform → 2. Codes this CLI does not know (a newer server) fall back to the HTTP status.
 */
export function exitCodeFor(code: string | undefined, status: number): ExitCode {
  if (isErrorCode(code)) return ERROR_CODES[code].actor === 'platform' ? EXIT_PLATFORM : EXIT_USER;
  return status >= 400 && status < 500 ? EXIT_USER : EXIT_PLATFORM;
}

/** Any thrown value → a CliError. Unknown failures are bugs or platform trouble: exit 2, no stack. */
export function toCliError(err: unknown): CliError {
  if (err instanceof CliError) return err;
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'string') {
    const e = err as { code: string; message?: string; details?: ErrorDetails };
    if (isErrorCode(e.code) && typeof e.message === 'string') {
      // A ContinuumError raised by core code (e.g. validation) in this process.
      return new CliError(e.code, e.message, { details: e.details });
    }
    const sys = systemErrorMessage(e.code, (err as { path?: unknown }).path);
    if (sys) return sys;
  }
  const message = err instanceof Error ? err.message : String(err);
  return new CliError('internal', `unexpected failure: ${firstLine(message)}`, { exitCode: EXIT_PLATFORM });
}

function systemErrorMessage(code: string, path: unknown): CliError | undefined {
  const where = typeof path === 'string' ? ` ${path}` : '';
  switch (code) {
    case 'ENOENT': return userError(`no such file or directory:${where}`);
    case 'EACCES':
    case 'EPERM': return userError(`permission denied:${where}`);
    case 'EISDIR': return userError(`is a directory:${where}`);
    case 'ENOTDIR': return userError(`not a directory:${where}`);
    default: return undefined;
  }
}

export function firstLine(text: string, max = 300): string {
  const line = text.split('\n', 1)[0] ?? '';
  return line.length > max ? `${line.slice(0, max)}…` : line;
}

/** The one-line human form: `error: <code>: <message>`. */
export function errorLine(err: CliError): string {
  return `error: ${err.code}: ${firstLine(err.message, 2000)}`;
}
