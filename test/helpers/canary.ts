/**
 * The abuse tests' canary (catalogue 7-21): while an abusive invocation runs, another function on another
 * instance keeps answering back to back; it must never fail, and its p99 must stay under CANARY_P99_MS.
 */
import assert from 'node:assert/strict';
import type { TestNode } from './node.ts';

/**
 * The canary's p99 bound while the abuse runs. Generous on purpose (a shared CI machine, gVisor under
 * ptrace): what it catches is a canary starved or stalled by its neighbour, which takes seconds.
 */
export const CANARY_P99_MS = 2000;

/** One canary request: null when it answered, else what went wrong. */
export type CanaryAsk = () => Promise<string | null>;

/** Runs `abuse` while `ask` is repeated back to back; then checks that every ask succeeded (at least 3). */
export async function withCanaryAsking<T>(ask: CanaryAsk, abuse: () => Promise<T>): Promise<T> {
  let stop = false;
  let answered = 0;
  const failures: string[] = [];
  const latencies: number[] = [];
  const loop = (async () => {
    while (!stop) {
      const t0 = performance.now();
      const failure = await ask();
      latencies.push(performance.now() - t0);
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
    const sorted = latencies.sort((a, b) => a - b);
    const p99 = sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)]!;
    console.log(`canary: ${sorted.length} answers, p50 ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`);
    assert.ok(p99 <= CANARY_P99_MS, `canary p99 ${p99.toFixed(0)} ms over ${CANARY_P99_MS} ms (${sorted.length} answers)`);
  }
}

/** The canary is a function of `node` at `canaryPath`. */
export function withCanary<T>(node: TestNode, canaryPath: string, abuse: () => Promise<T>): Promise<T> {
  return withCanaryAsking(async () => {
    const res = await node.fn(canaryPath);
    return res.status === 200 ? (await res.arrayBuffer(), null) : `${res.status} ${await res.text()}`;
  }, abuse);
}
