/**
 * A real nats-server for tests (ARCHITECTURE §2: cluster tests start real servers on loopback ports):
 * JetStream on a temporary store directory, a free loopback port, stopped by PID. `crash()` kills it with
 * SIGKILL and `start()` brings it back on the same directory and port, for restart and crash tests.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const READY_TIMEOUT_MS = 15_000;

/** The nats-server binary on PATH (`which`), else where Debian installs it (/usr/sbin, often not on PATH). */
export function findNatsServer(): string | null {
  const found = spawnSync('which', ['nats-server'], { encoding: 'utf8' });
  const onPath = found.status === 0 ? found.stdout.trim() : '';
  for (const candidate of [onPath, '/usr/sbin/nats-server', '/usr/local/sbin/nats-server']) {
    if (!candidate) continue;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** Why NATS tests cannot run here, or null when they can (for `test(name, { skip: natsSkipReason() })`). */
export function natsSkipReason(): string | false {
  return findNatsServer() === null ? 'nats-server is not installed (scripts/setup-host.sh installs it)' : false;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

export class NatsTestServer {
  readonly binary: string;
  readonly storeDir: string;
  readonly port: number;
  #child: ChildProcess | null = null;
  #log = '';

  private constructor(binary: string, storeDir: string, port: number) {
    this.binary = binary;
    this.storeDir = storeDir;
    this.port = port;
  }

  /** Starts a server on a fresh store directory and a free port; throws if nats-server is missing. */
  static async start(): Promise<NatsTestServer> {
    const binary = findNatsServer();
    if (!binary) throw new Error('nats-server not found');
    const dir = await mkdtemp(join(tmpdir(), 'continuum-nats-'));
    const server = new NatsTestServer(binary, dir, await freePort());
    await server.start();
    return server;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts the server (again) on the same store directory and port; resolves once JetStream is ready. */
  async start(): Promise<void> {
    if (this.#child) throw new Error('nats-server is already running');
    this.#log = '';
    const child = spawn(this.binary, ['-js', '-sd', this.storeDir, '-a', '127.0.0.1', '-p', String(this.port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    let ready = false;
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      if (this.#log.length < 64 * 1024) this.#log += chunk;
      if (chunk.includes('Server is ready')) ready = true;
    });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    // "Server is ready" comes after JetStream has recovered its streams; the connect check covers a
    // server that logs differently.
    while (!(ready && (await canConnect(this.port)))) {
      if (child.exitCode !== null || child.signalCode !== null) {
        this.#child = null;
        throw new Error(`nats-server exited during start:\n${this.#log.slice(-2000)}`);
      }
      if (Date.now() > deadline) {
        await this.#stop('SIGKILL');
        throw new Error(`nats-server was not ready within ${READY_TIMEOUT_MS} ms:\n${this.#log.slice(-2000)}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** SIGKILL: no shutdown, no flush (what a crash or an OOM kill leaves behind). */
  crash(): Promise<void> {
    return this.#stop('SIGKILL');
  }

  /** Crash the server and start it again on the same store directory and port. */
  async restart(): Promise<void> {
    await this.crash();
    await this.start();
  }

  /** Stops the server (SIGTERM) and removes its store directory. */
  async close(): Promise<void> {
    await this.#stop('SIGTERM');
    await rm(this.storeDir, { recursive: true, force: true });
  }

  async #stop(signal: NodeJS.Signals): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}
