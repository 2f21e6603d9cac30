import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ContinuumClient, type AsyncStatus, type InvocationView } from '../client.ts';
import { CliError } from '../errors.ts';
import { failure, invocationText, waitFor } from './invocation.ts';

const ID = '01a209a5-d5f0-72b3-8121-92108a074038';
const T0 = Date.UTC(2026, 0, 1, 12);

function async(over: Partial<AsyncStatus> = {}): AsyncStatus {
  return { kind: 'async', id: ID, functionName: 'af', queue: '_async-af', state: 'ready', attempt: 0, enqueuedAt: T0, idempotencyKey: null, outcome: null, ...over };
}

const succeeded = async({
  state: 'succeeded',
  attempt: 1,
  outcome: { state: 'succeeded', attempt: 1, finishedAt: T0 + 9, result: { status: 200, contentType: 'application/json', body: '{"ok":true}', encoding: 'utf8' } },
});
const failed = async({ state: 'failed', attempt: 3, idempotencyKey: 'k1', outcome: { state: 'failed', attempt: 3, finishedAt: T0 + 2500, error: { code: 'function_error', message: 'Error: boom' } } });

/** A real server answering GET /v1/invocations/{id} with the next state of `states` on each poll. */
async function serve(states: InvocationView[]): Promise<{ client: ContinuumClient; polls: () => number; close: () => Promise<void> }> {
  let polls = 0;
  const server = createServer((req, res) => {
    assert.equal(req.url, `/v1/invocations/${ID}`);
    const body = states[Math.min(polls++, states.length - 1)];
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    client: new ContinuumClient({ url, token: null, source: 'env' }),
    polls: () => polls,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

test('--wait polls through queued and running states until a terminal one', async () => {
  const s = await serve([async(), async({ state: 'in_flight', attempt: 1 }), async({ state: 'delayed', attempt: 1 }), succeeded]);
  try {
    const seen: string[] = [];
    const v = await waitFor(s.client, ID, 10_000, (p) => seen.push(p.state));
    assert.deepEqual(v, succeeded);
    assert.deepEqual(seen, ['ready', 'in_flight', 'delayed']);
    assert.equal(s.polls(), 4);
  } finally {
    await s.close();
  }
});

test('--wait gives up after its timeout with a timeout error naming the state (exit 1)', async () => {
  const s = await serve([async({ state: 'delayed', attempt: 2 })]);
  try {
    const started = Date.now();
    await assert.rejects(waitFor(s.client, ID, 300), (e: unknown) => {
      assert.ok(e instanceof CliError);
      assert.equal(e.code, 'timeout');
      assert.equal(e.exitCode, 1);
      assert.match(e.message, new RegExp(`invocation ${ID} is still delayed \\(attempt 2\\) after 300ms; check again with 'continuum invocation ${ID}'`));
      return true;
    });
    assert.ok(Date.now() - started < 2000, 'the wait is bounded by the timeout');
  } finally {
    await s.close();
  }
});

test('an execution record is final at once', async () => {
  const record = { id: ID, functionName: 'echo', versionId: 'v_1', tier: 'isolate', trigger: 'http', startedAt: new Date(T0).toISOString(), coldStart: true, phases: { queueMs: 0, initMs: 20, execMs: 3 }, outcome: 'error', status: 500, errorCode: 'function_error', errorMessage: 'boom', cpuMs: 2, peakMemoryBytes: 2 * 1024 * 1024, instanceId: 'i1', node: 'n1', logBytes: 0, logsTruncated: false } as InvocationView;
  const s = await serve([record]);
  try {
    assert.deepEqual(await waitFor(s.client, ID, 1000), record);
    assert.equal(s.polls(), 1);
  } finally {
    await s.close();
  }
  assert.equal(failure(record), 'function_error: boom');
  assert.equal(
    invocationText(record, T0 + 60_000),
    [
      `invocation  ${ID}`,
      'function    echo (v_1, isolate)',
      'trigger     http',
      'started     2026-01-01T12:00:00.000Z (1m ago)',
      'outcome     error, HTTP 500',
      'error       function_error: boom',
      'phases      queue 0 ms, init 20 ms, exec 3 ms (cold start)',
      'usage       cpu 2 ms, peak memory 2.0 MiB',
    ].join('\n'),
  );
});

test('async status: failure only once finished unsuccessfully; the text ends with the result body', () => {
  assert.equal(failure(async()), null);
  assert.equal(failure(succeeded), null);
  assert.equal(failure(failed), 'function_error: Error: boom');
  assert.equal(failure(async({ state: 'expired', attempt: 0 })), 'expired');
  assert.equal(
    invocationText(succeeded, T0 + 5000),
    [
      `invocation  ${ID}`,
      'function    af',
      'state       succeeded (attempt 1)',
      'enqueued    2026-01-01T12:00:00.000Z (5s ago)',
      'finished    2026-01-01T12:00:00.009Z (after 9ms)',
      'result      HTTP 200, application/json, 11 B',
      '',
      '{"ok":true}',
    ].join('\n'),
  );
  assert.match(invocationText(failed, T0), /^idempotency  k1$/m);
  assert.match(invocationText(failed, T0), /^error        function_error: Error: boom$/m);
  const binary = async({ ...succeeded, outcome: { ...succeeded.outcome!, result: { status: 200, contentType: 'image/png', body: 'iVBO', encoding: 'base64' } } });
  assert.match(invocationText(binary, T0), /image\/png, 3 B\n\n\(binary; --json shows it in base64\)$/);
});
