import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { flushOncePerTurn } from './flush.ts';
import { natsSkipReason, NatsTestServer } from './testing.ts';

/** Counts the client's socket writes (every flush ends in `transport.send`). */
function countWrites(nc: NatsConnection): { readonly n: number } {
  const transport = (nc as unknown as { protocol: { transport: { send(frame: Uint8Array): void } } }).protocol.transport;
  const send = transport.send.bind(transport);
  const counter = { n: 0 };
  transport.send = (frame) => {
    counter.n++;
    send(frame);
  };
  return counter;
}

/** Five publishes, each in its own microtask of one turn; resolves at the start of the next turn. */
async function publishAcrossMicrotasks(nc: NatsConnection, subject: string): Promise<void> {
  for (let i = 0; i < 5; i++) {
    nc.publish(subject, `m${i}`);
    await Promise.resolve();
  }
  await nextTurn();
}

const skip = natsSkipReason();
if (skip) {
  test('flushOncePerTurn', { skip }, () => {});
} else {
  let server: NatsTestServer;
  before(async () => {
    server = await NatsTestServer.start();
  });
  after(async () => {
    await server?.close();
  });

  test('what one turn queues leaves in one write (the client alone writes once per microtask); requests and close still work', async () => {
    const plain = await connect({ servers: server.url });
    const patched = await connect({ servers: server.url });
    try {
      assert.equal(flushOncePerTurn(patched), true);
      const received: string[] = [];
      const sub = plain.subscribe('f.>', { callback: (_e, m) => { received.push(m.string()); } });
      await plain.flush();

      const plainWrites = countWrites(plain);
      await publishAcrossMicrotasks(plain, 'f.plain');
      assert.equal(plainWrites.n, 5, 'the client writes once per microtask (if it no longer does, this module may be unnecessary)');

      const patchedWrites = countWrites(patched);
      await publishAcrossMicrotasks(patched, 'f.patched');
      assert.equal(patchedWrites.n, 1);

      await patched.flush();
      await plain.flush();
      assert.deepEqual(received, [...['m0', 'm1', 'm2', 'm3', 'm4'], ...['m0', 'm1', 'm2', 'm3', 'm4']]);

      plain.subscribe('echo', { callback: (_e, m) => { m.respond(`re:${m.string()}`); } });
      await plain.flush();
      assert.equal((await patched.request('echo', 'x', { timeout: 2000 })).string(), 're:x');
      sub.unsubscribe();
    } finally {
      await patched.close();
      await plain.close();
    }
  });
}
