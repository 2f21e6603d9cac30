/**
 * Cron schedules: five fields (minute hour day-of-month month day-of-week), or six with leading seconds,
 * read in an IANA time zone by croner; and the pure planner that decides what a starting node does about
 * fires it missed while it was down.
 */
import { Cron } from 'croner';
import { ContinuumError } from '../core/errors.ts';

export interface CronSchedule {
  /** The first fire strictly after `after` (epoch ms), or null when the schedule never fires again. */
  next: (after: number) => number | null;
}

/**
 * Validate and compile a schedule. Errors are `bad_request` with the pointer `<pointer>/schedule` or
 * `<pointer>/timezone`. Day-of-month and day-of-week combine with OR when both are restricted, as in
 * Vixie cron; a fixed time that a DST change skips runs at the first valid time after the gap.
 */
export function compileCron(schedule: string, timezone: string, pointer = ''): CronSchedule {
  const fields = schedule.trim().split(/\s+/);
  // Counting ourselves also refuses croner's @nicknames and its seven-field (year) form.
  if (fields.length !== 5 && fields.length !== 6) {
    throw new ContinuumError('bad_request', `schedule must have five fields, or six with leading seconds (it has ${fields.length})`, { pointer: `${pointer}/schedule` });
  }
  const zone = checkTimeZone(timezone, pointer);
  // UTC has no offsets to look up: croner's fixed-offset mode gives the same times about 15 times faster
  // than its time-zone mode (3 µs against 48 per next time), and a per-second cron asks once per fire.
  const where = zone === 'UTC' ? { utcOffset: 0 } : { timezone };
  let cron: Cron;
  try {
    cron = new Cron(fields.join(' '), { ...where, mode: '5-or-6-parts' });
  } catch (err) {
    const reason = err instanceof Error ? err.message.replace(/^CronPattern: /, '') : 'invalid';
    throw new ContinuumError('bad_request', `schedule is invalid: ${reason}`, { pointer: `${pointer}/schedule` });
  }
  // Without a year field a schedule repeats within 28 years, so one that has no fire after 1970 never fires.
  if (cron.nextRun(new Date(0)) === null) {
    throw new ContinuumError('bad_request', 'schedule never fires (no such date)', { pointer: `${pointer}/schedule` });
  }
  return { next: (after) => cron.nextRun(new Date(after))?.getTime() ?? null };
}

/** The zone's canonical name (`Etc/UTC`, `GMT` and `Zulu` are all `UTC`); bad_request for anything but an IANA name. */
function checkTimeZone(timezone: string, pointer: string): string {
  // Intl also takes UTC offsets such as +01:00; only IANA names are wanted.
  if (/^[A-Za-z]/.test(timezone)) {
    try {
      return new Intl.DateTimeFormat('en-US', { timeZone: timezone }).resolvedOptions().timeZone;
    } catch {
      // not a zone Intl knows
    }
  }
  throw new ContinuumError('bad_request', `timezone ${JSON.stringify(timezone.slice(0, 64))} is not an IANA time zone`, { pointer: `${pointer}/timezone` });
}

export interface FirePlan {
  /** Scheduled times to fire now, oldest first (at most one: missed fires never run as a burst). */
  fire: number[];
  /** When to wake for the next fire; null when the schedule never fires again. */
  nextAt: number | null;
}

/**
 * What a starting node does about a trigger: `lastFire` is the last scheduled time fired (the durable
 * cursor), null for a trigger that has never fired. Scheduled times in (lastFire, now] were missed while
 * the node was down: `skip` fires none of them, `run-once` only the latest. A clock behind `lastFire`
 * (a restart on a node whose clock is slow) waits for the first fire after `lastFire`, so no scheduled
 * time fires twice.
 */
export function planFires(input: { lastFire: number | null; now: number; missed: 'skip' | 'run-once'; next: (after: number) => number | null }): FirePlan {
  const { lastFire, now, missed, next } = input;
  const nextAt = next(lastFire === null ? now : Math.max(lastFire, now));
  if (lastFire === null || missed === 'skip') return { fire: [], nextAt };
  const first = next(lastFire);
  if (first === null || first > now) return { fire: [], nextAt };
  return { fire: [latestAtOrBefore(now, lastFire, next)], nextAt };
}

/**
 * The latest scheduled time ≤ now, given that one exists after `lastFire`. `next` only walks forward,
 * and walking a per-second schedule across a long outage would take millions of steps, so this
 * bisects instead: next(now - k) ≤ now holds exactly when some fire lies in (now - k, now], and the
 * smallest such k (to the millisecond) puts now - k just before the latest one.
 */
function latestAtOrBefore(now: number, lastFire: number, next: (after: number) => number | null): number {
  let lo = 0; // next(now) > now: the predicate is false here
  let hi = now - lastFire; // next(lastFire) <= now: true here
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    const t = next(now - mid);
    if (t !== null && t <= now) hi = mid;
    else lo = mid;
  }
  return next(now - hi)!;
}
