/** `--since` values: a Go-style duration back from now (`90s`, `10m`, `1h30m`, `2d`) or an RFC 3339 time. */
import { userError } from './errors.ts';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION_RE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const PART_RE = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
// RFC 3339: date, 'T' or space, time with optional fraction, and a zone (Z or ±hh:mm). A bare date is accepted too.
const RFC3339_RE = /^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2}))?$/;

/** Milliseconds in a duration such as `1h30m`; throws a user error for anything else. */
export function parseDuration(text: string): number {
  const s = text.trim();
  if (!DURATION_RE.test(s)) throw userError(`invalid duration ${JSON.stringify(text)}: use e.g. 30s, 10m, 1h30m, 2d`);
  let total = 0;
  for (const m of s.matchAll(PART_RE)) total += Number(m[1]) * (UNIT_MS[m[2] as string] ?? 0);
  return Math.round(total);
}

/** Absolute time in ms since the epoch for a `--since` value. */
export function parseSince(text: string, now: number = Date.now()): number {
  const s = text.trim();
  if (DURATION_RE.test(s)) return now - parseDuration(s);
  if (RFC3339_RE.test(s)) {
    const ms = Date.parse(s.length === 10 ? `${s}T00:00:00Z` : s);
    if (Number.isFinite(ms)) return ms;
  }
  throw userError(`invalid --since ${JSON.stringify(text)}: use a duration (10m, 1h) or an RFC 3339 time (2026-01-02T15:04:05Z)`);
}
