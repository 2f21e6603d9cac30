import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CliError } from './errors.ts';
import { parseDuration, parseSince } from './duration.ts';

test('Go-style durations, including compound ones', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('90s'), 90_000);
  assert.equal(parseDuration('10m'), 600_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('2d'), 172_800_000);
  assert.equal(parseDuration('1.5h'), 5_400_000);
});

test('--since: a duration counts back from now', () => {
  const now = Date.UTC(2026, 0, 2, 12, 0, 0);
  assert.equal(parseSince('10m', now), now - 600_000);
  assert.equal(parseSince(' 1h ', now), now - 3_600_000);
});

test('--since: RFC 3339 times with Z or an offset, and bare dates', () => {
  assert.equal(parseSince('2026-01-02T03:04:05Z'), Date.UTC(2026, 0, 2, 3, 4, 5));
  assert.equal(parseSince('2026-01-02T03:04:05.250+02:00'), Date.UTC(2026, 0, 2, 1, 4, 5, 250));
  assert.equal(parseSince('2026-01-02'), Date.UTC(2026, 0, 2));
});

test('--since: anything else is a user error naming the accepted forms', () => {
  for (const bad of ['10', 'ten minutes', '10x', '', '2026-01-02T03:04:05', 'm10']) {
    assert.throws(() => parseSince(bad), (err: unknown) => err instanceof CliError && err.exitCode === 1 && /duration|RFC 3339/.test(err.message), bad);
  }
});
