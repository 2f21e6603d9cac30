// The event targets: `continuum-sqlite` is a node started as usual (queues in SQLite in its data dir);
// `continuum-nats` is a node started with `continuum up --nats URL` against a nats-server of its own. Both
// are on SERVER_CPU; their CPU time counts the node's process tree plus the nats-server.
import { treeCpuUs } from '../lib/proc.ts';
import type { EventTarget } from '../lib/types.ts';
import { Continuum } from './continuum.ts';
import { startNats, type NatsServer } from './nats.ts';

const PROBE_QUEUE = 'bench-backend-probe';

export class EventNode {
  readonly target: EventTarget;
  readonly nats: NatsServer | null;
  readonly #dataDir: string;
  readonly #logFile: string;
  #node: Continuum;

  private constructor(target: EventTarget, node: Continuum, nats: NatsServer | null, dataDir: string, logFile: string) {
    this.target = target;
    this.#node = node;
    this.nats = nats;
    this.#dataDir = dataDir;
    this.#logFile = logFile;
  }

  /**
   * Starts the target with its data in `dataDir`. For `continuum-nats` it also checks that the node really
   * keeps queues in JetStream (a node that ignored `--nats` would quietly measure SQLite) and throws an
   * error starting with "not available" when it does not.
   */
  static async start(target: EventTarget, dataDir: string, logFile: string): Promise<EventNode> {
    if (target === 'continuum-sqlite') return new EventNode(target, await Continuum.start(dataDir, logFile), null, dataDir, logFile);
    let nats: NatsServer;
    try {
      nats = await startNats(`${dataDir}-nats`, `${logFile}.nats`);
    } catch (err) {
      throw new Error(`not available: ${err instanceof Error ? err.message : String(err)}`);
    }
    let node: Continuum | undefined;
    try {
      node = await Continuum.start(dataDir, logFile, 60000, ['--nats', nats.url]).catch((err: unknown) => {
        throw new Error(`not available: continuum up --nats did not start (${err instanceof Error ? err.message : String(err)})`);
      });
      await node.json('POST', '/v1/queues', { name: PROBE_QUEUE });
      await node.json('POST', `/v1/queues/${PROBE_QUEUE}/messages`, { messages: [{ body: 'probe' }] });
      const js = await nats.jetStream();
      if (js.streams === 0 && js.messages === 0) throw new Error('not available: continuum up --nats kept its queues out of JetStream (the flag is not wired to the NATS backend yet)');
      await node.json('DELETE', `/v1/queues/${PROBE_QUEUE}`);
      return new EventNode(target, node, nats, dataDir, logFile);
    } catch (err) {
      await node?.proc.stop();
      await nats.proc.stop();
      throw err;
    }
  }

  /** The node as it runs now (a restart gives it a new port). */
  get node(): Continuum {
    return this.#node;
  }

  /** CPU time so far of everything under test, in µs (compare differences only). */
  cpuUs(): number {
    return treeCpuUs(this.#node.proc.pid) + (this.nats ? treeCpuUs(this.nats.proc.pid) : 0);
  }

  /** SIGTERM to the node, then `continuum up` again on the same data dir (and NATS); resolves when ready. */
  async restart(): Promise<void> {
    await this.#node.proc.terminate();
    this.#node = await Continuum.start(this.#dataDir, this.#logFile, 60000, this.nats ? ['--nats', this.nats.url] : []);
  }

  async stop(): Promise<void> {
    await this.#node.proc.stop();
    await this.nats?.proc.stop();
  }
}
