import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ContinuumError } from '../core/errors.ts';
import { compileCron, planFires, type FirePlan } from './cron.ts';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

test('compileCron accepts five or six fields and IANA time zones', () => {
  const rows: Array<[string, string]> = [
    ['*/5 * * * *', 'UTC'],
    ['0 9 * * MON-FRI', 'Europe/Berlin'],
    ['30 0 9 * * 1-5', 'America/New_York'],
    ['0 0 L * *', 'Asia/Tokyo'],
    ['0 0 29 2 *', 'UTC'],
    ['  0   12 * * *  ', 'Etc/GMT+5'],
    ['0 0 * * *', 'US/Pacific'],
    ['0 0 1 JAN *', 'utc'],
  ];
  for (const [schedule, timezone] of rows) assert.equal(typeof compileCron(schedule, timezone).next, 'function', `${schedule} ${timezone}`);
});

test('compileCron refuses bad schedules and zones, naming the field', () => {
  const rows: Array<[string, string, string, RegExp]> = [
    ['* * * *', 'UTC', 'schedule', /five fields/],
    ['* * * * * * 2030', 'UTC', 'schedule', /five fields/],
    ['@daily', 'UTC', 'schedule', /five fields/],
    ['', 'UTC', 'schedule', /five fields/],
    ['61 * * * *', 'UTC', 'schedule', /minute/],
    ['0 24 * * *', 'UTC', 'schedule', /hour/],
    ['*/0 * * * *', 'UTC', 'schedule', /stepping/],
    ['a b c d e', 'UTC', 'schedule', /illegal/],
    ['0 0 30 2 *', 'UTC', 'schedule', /never fires/],
    ['0 0 * * *', 'Mars/Olympus', 'timezone', /IANA/],
    ['0 0 * * *', '+01:00', 'timezone', /IANA/],
    ['0 0 * * *', '', 'timezone', /IANA/],
  ];
  for (const [schedule, timezone, field, message] of rows) {
    assert.throws(
      () => compileCron(schedule, timezone, '/triggers/2'),
      (e: unknown) => e instanceof ContinuumError && e.code === 'bad_request' && e.details?.pointer === `/triggers/2/${field}` && message.test(e.message),
      `${JSON.stringify(schedule)} ${JSON.stringify(timezone)}`,
    );
  }
});

test('next fire table: strictly after the instant, in the time zone, whatever the host\'s zone', () => {
  const rows: Array<[string, string, string, string, string | null]> = [
    ['every quarter hour', '*/15 * * * *', 'UTC', '2025-06-01T10:07:30.000Z', '2025-06-01T10:15:00.000Z'],
    ['strictly after a fire time', '*/15 * * * *', 'UTC', '2025-06-01T10:15:00.000Z', '2025-06-01T10:30:00.000Z'],
    ['one ms before a fire time', '*/15 * * * *', 'UTC', '2025-06-01T10:14:59.999Z', '2025-06-01T10:15:00.000Z'],
    ['six fields: seconds', '*/10 * * * * *', 'UTC', '2025-06-01T10:00:00.500Z', '2025-06-01T10:00:10.000Z'],
    ['9:00 in New York, winter (EST)', '0 9 * * *', 'America/New_York', '2025-01-15T00:00:00.000Z', '2025-01-15T14:00:00.000Z'],
    ['9:00 in New York, summer (EDT)', '0 9 * * *', 'America/New_York', '2025-07-15T00:00:00.000Z', '2025-07-15T13:00:00.000Z'],
    ['02:30 skipped by spring forward runs at 03:00 local', '30 2 * * *', 'Europe/Berlin', '2025-03-29T02:00:00.000Z', '2025-03-30T01:00:00.000Z'],
    ['02:30 repeated by fall back runs once', '30 2 * * *', 'Europe/Berlin', '2025-10-26T00:30:00.000Z', '2025-10-27T01:30:00.000Z'],
    ['day of month OR day of week: the Friday comes first', '0 0 13 * 5', 'UTC', '2025-06-01T00:00:00.000Z', '2025-06-06T00:00:00.000Z'],
    ['last day of February in a leap year', '0 0 L 2 *', 'UTC', '2024-01-01T00:00:00.000Z', '2024-02-29T00:00:00.000Z'],
    ['weekdays skip the weekend', '0 9 * * MON-FRI', 'UTC', '2025-06-06T09:00:00.000Z', '2025-06-09T09:00:00.000Z'],
    ['another name of UTC', '0 9 * * MON-FRI', 'Etc/GMT', '2025-06-06T09:00:00.000Z', '2025-06-09T09:00:00.000Z'],
    ['London is not UTC in summer', '0 9 * * *', 'Europe/London', '2025-07-15T00:00:00.000Z', '2025-07-15T08:00:00.000Z'],
    ['London is UTC in winter', '0 9 * * *', 'Europe/London', '2025-01-15T00:00:00.000Z', '2025-01-15T09:00:00.000Z'],
  ];
  const hostZone = process.env.TZ;
  try {
    for (const host of ['UTC', 'America/New_York', 'Asia/Kolkata']) {
      process.env.TZ = host; // Node applies it at once
      for (const [name, schedule, timezone, after, expected] of rows) {
        assert.equal(iso(compileCron(schedule, timezone).next(at(after))), expected, `${name} (host in ${host})`);
      }
    }
  } finally {
    if (hostZone === undefined) delete process.env.TZ;
    else process.env.TZ = hostZone;
  }
});

test('planFires table', () => {
  const hourly = compileCron('0 * * * *', 'UTC').next;
  const rows: Array<[string, { lastFire: string | null; now: string; missed: 'skip' | 'run-once' }, { fire: string[]; nextAt: string | null }]> = [
    ['never fired: nothing to catch up', { lastFire: null, now: '2025-06-01T10:30:00.000Z', missed: 'run-once' }, { fire: [], nextAt: '2025-06-01T11:00:00.000Z' }],
    ['skip after downtime', { lastFire: '2025-06-01T10:00:00.000Z', now: '2025-06-01T13:30:00.000Z', missed: 'skip' }, { fire: [], nextAt: '2025-06-01T14:00:00.000Z' }],
    ['run-once after downtime: the latest missed only', { lastFire: '2025-06-01T10:00:00.000Z', now: '2025-06-01T13:30:00.000Z', missed: 'run-once' }, { fire: ['2025-06-01T13:00:00.000Z'], nextAt: '2025-06-01T14:00:00.000Z' }],
    ['run-once, one fire missed', { lastFire: '2025-06-01T10:00:00.000Z', now: '2025-06-01T11:00:00.001Z', missed: 'run-once' }, { fire: ['2025-06-01T11:00:00.000Z'], nextAt: '2025-06-01T12:00:00.000Z' }],
    ['run-once, a fire due exactly now', { lastFire: '2025-06-01T10:00:00.000Z', now: '2025-06-01T11:00:00.000Z', missed: 'run-once' }, { fire: ['2025-06-01T11:00:00.000Z'], nextAt: '2025-06-01T12:00:00.000Z' }],
    ['run-once, down between two fires', { lastFire: '2025-06-01T10:00:00.000Z', now: '2025-06-01T10:59:59.999Z', missed: 'run-once' }, { fire: [], nextAt: '2025-06-01T11:00:00.000Z' }],
    ['skip, one fire missed by a ms', { lastFire: '2025-06-01T10:00:00.000Z', now: '2025-06-01T11:00:00.001Z', missed: 'skip' }, { fire: [], nextAt: '2025-06-01T12:00:00.000Z' }],
    ['clock behind the cursor: no fire repeats', { lastFire: '2025-06-01T10:00:00.000Z', now: '2025-06-01T09:30:00.000Z', missed: 'run-once' }, { fire: [], nextAt: '2025-06-01T11:00:00.000Z' }],
    ['run-once after a year down', { lastFire: '2024-06-01T10:00:00.000Z', now: '2025-06-01T10:30:00.000Z', missed: 'run-once' }, { fire: ['2025-06-01T10:00:00.000Z'], nextAt: '2025-06-01T11:00:00.000Z' }],
  ];
  for (const [name, input, expected] of rows) {
    const plan = planFires({ lastFire: input.lastFire === null ? null : at(input.lastFire), now: at(input.now), missed: input.missed, next: hourly });
    assert.deepEqual({ fire: plan.fire.map(iso), nextAt: iso(plan.nextAt) }, expected, name);
  }
});

test('planFires finds the latest missed fire of a per-second schedule after a year down, quickly', () => {
  const everySecond = compileCron('* * * * * *', 'UTC').next;
  const started = performance.now();
  const plan = planFires({ lastFire: at('2024-06-01T00:00:00.000Z'), now: at('2025-06-01T10:30:07.250Z'), missed: 'run-once', next: everySecond });
  assert.deepEqual(plan.fire.map(iso), ['2025-06-01T10:30:07.000Z']);
  assert.equal(iso(plan.nextAt), '2025-06-01T10:30:08.000Z');
  assert.ok(performance.now() - started < 200, 'bisects instead of walking 31 million seconds');
});

test('planFires with irregular schedules and one that ends', () => {
  // A schedule given as a list of instants: irregular gaps, and no fire after the last.
  const list = (...times: number[]) => (after: number) => times.find((t) => t > after) ?? null;
  const rows: Array<[string, Parameters<typeof planFires>[0], FirePlan]> = [
    ['latest of irregular missed fires', { lastFire: 100, now: 1000, missed: 'run-once', next: list(100, 101, 350, 351, 999, 1500) }, { fire: [999], nextAt: 1500 }],
    ['a fire one ms after the cursor', { lastFire: 100, now: 101, missed: 'run-once', next: list(100, 101, 102) }, { fire: [101], nextAt: 102 }],
    ['the schedule ended after the missed fire', { lastFire: 100, now: 1000, missed: 'run-once', next: list(100, 700) }, { fire: [700], nextAt: null }],
    ['the schedule ended before', { lastFire: 700, now: 1000, missed: 'run-once', next: list(100, 700) }, { fire: [], nextAt: null }],
    ['skip with an ended schedule', { lastFire: 100, now: 1000, missed: 'skip', next: list(100, 700) }, { fire: [], nextAt: null }],
  ];
  for (const [name, input, expected] of rows) assert.deepEqual(planFires(input), expected, name);
});

test('planFires across the repeated hour of a DST fall back', () => {
  // Every 30 minutes in Berlin: 02:00 and 02:30 local happen twice on 2025-10-26 (00:00Z..01:30Z).
  const halfHourly = compileCron('*/30 * * * *', 'Europe/Berlin').next;
  const plan = planFires({ lastFire: at('2025-10-25T22:00:00.000Z'), now: at('2025-10-26T01:10:00.000Z'), missed: 'run-once', next: halfHourly });
  assert.deepEqual(plan.fire.map(iso), ['2025-10-26T01:00:00.000Z']);
  assert.equal(iso(plan.nextAt), '2025-10-26T01:30:00.000Z');
});
