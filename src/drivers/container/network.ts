/**
 * How Continuum reaches a container's `$PORT` without host networking.
 *
 * Each instance gets its own network namespace (`ip netns add`) holding loopback and one end of a veth
 * pair (`eth0`, 10.a.b.c/30); the other end sits in the driver's private *hub* namespace, never in the
 * host's. A bridge process (bridge.ts, the pinned Node binary entered into the hub with `nsenter`) listens
 * on a unix socket in the driver's private directory and forwards each connection to the container's
 * address. So: the container sees no host interface, no route out, and no other container (the hub does
 * not forward; nothing listens on its addresses); the host never binds a TCP port for it.
 *
 * Why not simpler: runc alone could use an empty namespace entered by a per-instance forwarder, but
 * gVisor's netstack (and, on this host, runsc's own check for the root namespace) needs an interface, and
 * a veth per instance with one shared bridge costs three `ip` runs at cold start instead of a Node process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';

export interface Attachment {
  /** `/run/netns/<name>`: the container's network namespace. */
  netnsPath: string;
  /** The container's address on its veth. */
  ip: string;
  release(): Promise<void>;
}

/** Runs a short command to its end (the driver's launcher): resolves with its output, rejects on failure. */
export type Exec = (file: string, args: string[], input?: string) => Promise<string>;

/** Namespaces named `<prefix><pid>-…` of node processes that are gone (they die with their node otherwise never). */
export async function removeStaleNamespaces(exec: Exec, ipPath: string, prefix: string): Promise<void> {
  let out = '';
  try {
    out = await exec(ipPath, ['netns', 'list']);
  } catch {
    return;
  }
  for (const line of out.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const owner = new RegExp(`^${prefix}(\\d+)-`).exec(name);
    if (!owner) continue;
    try {
      process.kill(Number(owner[1]), 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') await exec(ipPath, ['netns', 'del', name]).catch(() => {});
    }
  }
}

export class NetworkHub {
  readonly #exec: Exec;
  readonly #ipPath: string;
  readonly #name: string;
  readonly #socketPath: string;
  #bridge: ChildProcess | null = null;
  /** Only a namespace this hub made is deleted by it. */
  #created = false;
  #free: number[] = [];
  #next = 1;

  /** Instance namespaces are named `<prefix>-<k>` (k: the address index, unique among live ones). */
  readonly #prefix: string;
  /** Namespaces made ahead of need, so a cold start does not wait for `ip`. */
  readonly #spares: number;
  readonly #refillDelayMs: number;
  #spare: Array<Promise<Attachment>> = [];
  #running = false;

  constructor(init: { exec: Exec; ipPath: string; prefix: string; socketPath: string; spares: number; refillDelayMs: number }) {
    this.#exec = init.exec;
    this.#ipPath = init.ipPath;
    this.#prefix = init.prefix;
    this.#name = `${init.prefix}-hub`;
    this.#socketPath = init.socketPath;
    this.#spares = init.spares;
    this.#refillDelayMs = init.refillDelayMs;
  }

  /** Creates the hub namespace and starts the bridge in it. */
  async start(nodePath: string, nsenterPath: string): Promise<void> {
    await this.#ip(['netns', 'add', this.#name]);
    this.#created = true;
    await this.#ip(['-n', this.#name, 'link', 'set', 'lo', 'up']);
    const script = new URL('./bridge.ts', import.meta.url).pathname;
    const bridge = spawn(nsenterPath, [`--net=/run/netns/${this.#name}`, '--', nodePath, script, this.#socketPath], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#bridge = bridge;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the network bridge did not start')), 10_000);
      bridge.stdout!.once('data', () => {
        clearTimeout(timer);
        resolve();
      });
      bridge.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the network bridge exited (${code})`));
      });
    });
    this.#running = true;
    this.#refill();
  }

  #refill(): void {
    while (this.#running && this.#spare.length < this.#spares) {
      const made = this.#attach();
      made.catch(() => {});
      this.#spare.push(made);
    }
  }

  /**
   * A namespace for one instance: a spare if one is ready, else a new one. The spare is replaced when the
   * caller says its start is over (`replenish`): made meanwhile, the namespace would compete with that start.
   */
  async take(): Promise<Attachment> {
    const spare = this.#spare.shift();
    if (spare) {
      try {
        return await spare;
      } catch {
        // made while the host was failing: try once more now
      }
    }
    return this.#attach();
  }

  /** Make up for spares taken, a little later (see take). */
  replenish(): void {
    setTimeout(() => this.#refill(), this.#refillDelayMs).unref();
  }

  async stop(): Promise<void> {
    this.#running = false;
    const spares = this.#spare.splice(0);
    await Promise.all(spares.map((p) => p.then((a) => a.release(), () => {})));
    this.#bridge?.stdin?.end();
    this.#bridge?.kill('SIGKILL');
    this.#bridge = null;
    if (this.#created) await this.#ip(['netns', 'del', this.#name]).catch(() => {});
    this.#created = false;
  }

  /** A fresh namespace for one instance, with its veth to the hub. */
  async #attach(): Promise<Attachment> {
    const k = this.#free.pop() ?? this.#next++;
    const name = `${this.#prefix}-${k}`;
    if (k >= 1 << 22) throw new Error('no instance address is free');
    const base = k * 4;
    const addr = (n: number) => `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
    const hubIf = `${this.#name.slice(0, 6)}x${k}`.slice(0, 15);
    try {
      await this.#ip(['-batch', '-'], `netns add ${name}\nlink add eth0 netns ${name} type veth peer name ${hubIf} netns ${this.#name}\n`);
      await Promise.all([
        this.#ip(['-n', name, '-batch', '-'], `link set lo up\naddr add ${addr(base + 2)}/30 dev eth0\nlink set eth0 up\n`),
        this.#ip(['-n', this.#name, '-batch', '-'], `addr add ${addr(base + 1)}/30 dev ${hubIf}\nlink set ${hubIf} up\n`),
      ]);
    } catch (err) {
      await this.#ip(['netns', 'del', name]).catch(() => {});
      this.#free.push(k);
      throw err;
    }
    let released = false;
    return {
      netnsPath: `/run/netns/${name}`,
      ip: addr(base + 2),
      release: async () => {
        if (released) return;
        released = true;
        // The veth first: a deleted namespace's interfaces go asynchronously, and the hub's end keeps its
        // name (reused with the address) until then.
        await this.#ip(['-n', this.#name, 'link', 'del', hubIf]).catch(() => {});
        await this.#ip(['netns', 'del', name]).catch(() => {});
        this.#free.push(k);
      },
    };
  }

  async #ip(args: string[], batch?: string): Promise<void> {
    await this.#exec(this.#ipPath, args, batch);
  }

  /** A connection to `ip:port` through the bridge (bytes written before it connects are kept in order). */
  connect(target: string): Socket {
    const socket = createConnection(this.#socketPath);
    socket.write(`${target}\n`);
    return socket;
  }

  /** Whether something accepts connections on `ip:port` now. */
  probe(target: string): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = createConnection(this.#socketPath);
      let answer = '';
      socket.on('data', (d: Buffer) => (answer += d.toString()));
      socket.on('error', () => resolve(false));
      socket.on('close', () => resolve(answer === '1'));
      socket.write(`?${target}\n`);
    });
  }
}

export function hubSocket(dir: string): string {
  return join(dir, 'bridge.sock');
}
