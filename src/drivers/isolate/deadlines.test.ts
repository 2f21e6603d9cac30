import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Deadlines } from './deadlines.ts';

test('one timer expires overlapping deadlines in order, each at its own time, and stops when nothing is left', async () => {
  const items = new Map<string, { deadline: number; added: number }>();
  const expired: Array<[string, number]> = [];
  const d = new Deadlines(items, (key) => {
    expired.push([key, performance.now() - items.get(key)!.added]);
    items.delete(key);
    d.removed();
  });
  const add = (key: string, ms: number) => {
    items.set(key, { deadline: Deadlines.after(ms), added: performance.now() });
    d.added();
  };
  add('a', 60);
  await sleep(20);
  add('b', 60);
  add('c', 60);
  items.delete('c'); // finished in time: never expires
  d.removed();
  await sleep(150);
  assert.deepEqual(expired.map(([k]) => k), ['a', 'b']);
  for (const [key, waited] of expired) assert.ok(waited >= 59 && waited < 140, `${key} expired after ${waited} ms`);
  add('d', 30);
  items.delete('d');
  d.removed(); // empty again: the timer is gone, so this test ends without waiting for it
  assert.equal(expired.length, 2);
});
