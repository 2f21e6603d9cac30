/**
 * One socket write per event-loop turn for a NATS connection.
 *
 * The client writes its outbound buffer at the end of every microtask checkpoint in which something was
 * queued, so a settle, a pull and the publishes of a send that resolve in different microtasks of one turn
 * each become a write. On loopback every write runs the receiver's network stack in the writer's system
 * call and wakes nats-server; with the node and the server on one core that was most of the node's time in
 * `queue_throughput` (NATS, batch 10, 1 KB: ≈ 4,100 → 5,300 msgs/s, node + server CPU 241 → 188 µs/msg
 * with this; docs/benchmarks.md). Deferring the write to `setImmediate` gathers everything queued in the
 * turn into one; it adds no timer and at most the rest of the current turn to any request's latency.
 *
 * The client has no option for this, so the installer replaces its protocol handler's `flushPending` (the
 * one method every send path — publish, request, ping, reconnect — goes through). It returns false when
 * the client no longer has that shape (a library upgrade), and the store then runs unpatched; the test in
 * this folder fails in that case, so an upgrade cannot lose it silently.
 */
import type { NatsConnection } from '@nats-io/transport-node';

interface ProtocolWithFlush {
  flushPending(): void;
}

export function flushOncePerTurn(nc: NatsConnection): boolean {
  const protocol = (nc as unknown as { protocol?: Partial<ProtocolWithFlush> }).protocol;
  if (typeof protocol?.flushPending !== 'function') return false;
  const flush = protocol.flushPending.bind(protocol);
  let scheduled = false;
  protocol.flushPending = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      flush();
    });
  };
  return true;
}
