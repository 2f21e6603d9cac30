/**
 * The abuse tests' canary (catalogue 7-21): while an abusive invocation runs, another function on another
 * instance keeps answering back to back; it must never fail.
 */
import assert from 'node:assert/strict';
import type { TestNode } from './node.ts';

/** One canary request: null when it answered, else what went wrong. */
export type CanaryAsk = () => Promise<string | null>;

/** Runs `abuse` while `ask` is repeated back to back; then checks that every ask succeeded (at least 3). */
export async function withCanaryAsking<T>(ask: CanaryAsk, abuse: () => Promise<T>): Promise<T> {
  let stop = false;
  let answered = 0;
  const failures: string[] = [];
  const loop = (async () => {
    while (!stop) {
      const failure = await ask();
      if (failure === null) answered++;
      else failures.push(failure);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  try {
    return await abuse();
  } finally {
    // A quick abuse can end before the canary has answered a few times: keep it going briefly, so the
    // check below is about the canary, not about how fast the abuse was.
    const deadline = Date.now() + 5000;
    while (answered < 3 && failures.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    stop = true;
    await loop;
    assert.deepEqual(failures, []);
    assert.ok(answered >= 3, `canary answered ${answered}`);
  }
}

/** The canary is a function of `node` at `canaryPath`. */
export function withCanary<T>(node: TestNode, canaryPath: string, abuse: () => Promise<T>): Promise<T> {
  return withCanaryAsking(async () => {
    const res = await node.fn(canaryPath);
    return res.status === 200 ? (await res.arrayBuffer(), null) : `${res.status} ${await res.text()}`;
  }, abuse);
}
