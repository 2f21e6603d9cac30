/**
 * A node in its own process (`continuum up`), so tests can kill it with SIGKILL and start it again on the
 * same data dir and port — the crash tests' subject. Stopped by PID; nothing else is touched.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { apiCall } from './http.ts';

const BIN = new URL('../../bin/continuum.mjs', import.meta.url).pathname;
const READY_TIMEOUT_MS = 30_000;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

export class ProcessNode {
  readonly dataDir: string;
  readonly port: number;
  readonly url: string;
  readonly extraArgs: string[];
  /** Extra environment for the next start (e.g. CONTINUUM_FAILPOINTS). */
  env: Record<string, string> = {};
  token = '';
  #child: ChildProcess | null = null;
  #output = '';

  constructor(dataDir: string, port: number, extraArgs: string[] = []) {
    this.dataDir = dataDir;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.extraArgs = extraArgs;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** The node's stderr so far (for failure messages). */
  get output(): string {
    return this.#output.slice(-4000);
  }

  async start(): Promise<void> {
    const env = { ...process.env };
    for (const k of Object.keys(env)) if (k.startsWith('CONTINUUM_')) delete env[k];
    // The container tiers' background start-up (image import, runtime probes) is for tests that ask for it.
    env.CONTINUUM_CONTAINER_TIERS = '0';
    Object.assign(env, this.env);
    const child = spawn(process.execPath, [BIN, 'up', '--port', String(this.port), '--data-dir', this.dataDir, ...this.extraArgs], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.#child = child;
    child.stderr!.on('data', (d: Buffer) => (this.#output += d.toString()));
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`node exited with ${child.exitCode}: ${this.output}`);
      try {
        if ((await fetch(`${this.url}/readyz`)).ok) break;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    this.token = (await readFile(join(this.dataDir, 'admin-token'), 'utf8')).trim();
  }

  /** Resolves when the process has exited (e.g. killed by a failpoint). */
  exited(): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => child.once('exit', () => resolve()));
  }

  /** SIGKILL, then wait for the process to be gone. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await gone;
  }

  /** SIGTERM (graceful), then wait. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await gone;
  }

  api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
    return apiCall(this.url, this.token, method, path, body, headers);
  }

  async deploy(name: string, source: string, config?: unknown): Promise<{ status: number; json: any }> {
    const res = await fetch(`${this.url}/v1/functions/${name}/deploy?filename=index.js`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/javascript', ...(config ? { 'continuum-config': JSON.stringify(config) } : {}) },
      body: source,
    });
    return { status: res.status, json: await res.json() };
  }
}
