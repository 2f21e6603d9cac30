/**
 * Output rules: with --json, stdout carries exactly one JSON document (or NDJSON for streams) and nothing
 * else; human text goes to stdout, progress and traces to stderr. Progress is drawn only on an interactive
 * stderr outside CI.
 */
import type { Writable } from 'node:stream';
import type { CliError } from './errors.ts';
import { errorLine } from './errors.ts';

export interface Streams {
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
}

export interface OutputOptions {
  json: boolean;
  verbose: boolean;
  env: Record<string, string | undefined>;
}

export function isCI(env: Record<string, string | undefined>): boolean {
  const ci = env.CI?.toLowerCase();
  return ci !== undefined && ci !== '' && ci !== '0' && ci !== 'false';
}

export class Output {
  readonly json: boolean;
  readonly verbose: boolean;
  /** Whether progress lines are drawn (stderr is a TTY, not CI, not --json). */
  readonly progress: boolean;
  readonly #s: Streams;
  #liveLine = false;

  constructor(streams: Streams, opts: OutputOptions) {
    this.#s = streams;
    this.json = opts.json;
    this.verbose = opts.verbose;
    this.progress = !opts.json && streams.stderr.isTTY === true && !isCI(opts.env);
  }

  get stdoutIsTTY(): boolean {
    return this.#s.stdout.isTTY === true;
  }

  /** The command's result: the JSON document with --json, else the human text (if any). */
  result(value: unknown, human: () => string | undefined): void {
    this.#clearLive();
    if (this.json) this.#s.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    else {
      const text = human();
      if (text) this.#s.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    }
  }

  /** One NDJSON line (streams with --json). */
  jsonLine(value: unknown): void {
    this.#s.stdout.write(`${JSON.stringify(value)}\n`);
  }

  /** Raw bytes to stdout (invoke bodies). */
  raw(data: Uint8Array | string): void {
    this.#s.stdout.write(data);
  }

  /** Human text on stdout; dropped with --json. */
  text(line: string): void {
    if (!this.json) this.#s.stdout.write(line.endsWith('\n') ? line : `${line}\n`);
  }

  /** A note for people on stderr (warnings, hints); kept out of stdout in every mode. */
  note(line: string): void {
    this.#clearLive();
    this.#s.stderr.write(`${line}\n`);
  }

  /** --verbose traces (HTTP calls) on stderr. */
  trace(line: string): void {
    if (this.verbose) this.note(line);
  }

  /** A finished progress step. */
  step(line: string): void {
    if (!this.progress) return;
    this.#clearLive();
    this.#s.stderr.write(`${line}\n`);
  }

  /** A progress line redrawn in place (upload percent). */
  live(line: string): void {
    if (!this.progress) return;
    this.#s.stderr.write(`\r\x1b[K${line}`);
    this.#liveLine = true;
  }

  #clearLive(): void {
    if (this.#liveLine) {
      this.#s.stderr.write('\r\x1b[K');
      this.#liveLine = false;
    }
  }

  /** Report a failure: the error body on stdout with --json, one line on stderr otherwise. */
  error(err: CliError): void {
    if (this.json) this.#s.stdout.write(`${JSON.stringify(err.toBody())}\n`);
    else this.note(errorLine(err));
  }
}

/** A plain text table: left-aligned, two spaces between columns, no colour. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: readonly string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [fmt(headers), ...rows.map(fmt)].join('\n');
}

/** Key/value lines with the values aligned, for one resource (`queue show`, `invocation`). */
export function fields(rows: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`.trimEnd()).join('\n');
}

/** `850ms`, `12s`, `5m`, `3h`, `2d`: a span rounded down to its largest unit. */
export function formatSpan(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** `12s ago`, `5m ago`, `3h ago`, `2d ago` for an ISO time or epoch ms; the input when it is not a date. */
export function formatAge(when: string | number | null | undefined, now: number = Date.now()): string {
  if (when === null || when === undefined || when === '') return '-';
  const t = typeof when === 'number' ? when : Date.parse(when);
  if (!Number.isFinite(t)) return String(when);
  const s = Math.max(0, Math.round((now - t) / 1000));
  return `${s === 0 ? '0s' : formatSpan(s * 1000)} ago`;
}

const MiB = 1024 * 1024;
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < MiB) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / MiB).toFixed(1)} MiB`;
}
