// A nats-server with JetStream for the `continuum-nats` target, pinned to SERVER_CPU like everything under
// test; started the way src/store/nats/testing.ts starts it for the tests (loopback port, own store dir),
// plus the monitoring port, whose /jsz tells whether a node really keeps its queues in JetStream.
import { findNatsServer } from '../../src/store/nats/testing.ts';
import { freePort, request, SERVER_CPU, spawnPinned, waitForOk, type Spawned } from '../lib/util.ts';

/** nats-server on PATH, else where Debian installs it; null when missing (one lookup for tests and bench). */
export const natsServerBin = findNatsServer;

export interface NatsServer {
  url: string;
  proc: Spawned;
  /** JetStream totals from the monitoring endpoint. */
  jetStream(): Promise<{ streams: number; messages: number }>;
}

export async function startNats(storeDir: string, logFile?: string): Promise<NatsServer> {
  const bin = natsServerBin();
  if (!bin) throw new Error('nats-server is not installed (scripts/setup-host.sh installs it)');
  const port = await freePort();
  const monitor = await freePort();
  const t0 = process.hrtime.bigint();
  const proc = spawnPinned(SERVER_CPU, bin, ['-js', '-sd', storeDir, '-a', '127.0.0.1', '-p', String(port), '-m', String(monitor)], { logFile });
  const monitorUrl = `http://127.0.0.1:${monitor}`;
  try {
    // JetStream-enabled health: answers 200 only once JetStream is up.
    await waitForOk(`${monitorUrl}/healthz?js-enabled-only=true`, t0, 15000, () => proc.child.exitCode === null);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    proc,
    async jetStream() {
      const res = await request(`${monitorUrl}/jsz`, { fresh: true });
      const body = JSON.parse(res.body) as { streams?: number; messages?: number };
      return { streams: body.streams ?? 0, messages: body.messages ?? 0 };
    },
  };
}
