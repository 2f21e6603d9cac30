// Process, port and HTTP helpers shared by the targets and scenarios.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

/** Core that runs the load generator (and this runner); everything under test runs on SERVER_CPU. */
export const LOAD_CPU = '0';
export const SERVER_CPU = '1';

/**
 * Milliseconds a fixed integer loop takes on the server core: how fast this (virtual) machine is right now.
 * It has taken from ≈ 200 to ≈ 390 ms here within minutes, so absolute figures (msgs/s) of runs are
 * comparable only next to this; null when the probe could not run.
 */
export function cpuProbeMs(): number | null {
  // Prints the sum too, so the loop's result is used and cannot be optimised away.
  const loop = 'const t=process.hrtime.bigint();let x=0;for(let i=0;i<1e8;i++)x+=i%7;console.log(Number(process.hrtime.bigint()-t)/1e6,x)';
  const r = spawnSync('taskset', ['-c', SERVER_CPU, process.execPath, '-e', loop], { encoding: 'utf8', timeout: 30_000 });
  const ms = Number(r.stdout.split(' ')[0]);
  return r.status === 0 && Number.isFinite(ms) ? Math.round(ms) : null;
}

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as net.AddressInfo).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

/** Process groups started by this run and still alive (for cleanup on interrupt). */
const live = new Set<number>();

/** SIGKILLs every process group this run started that is still alive. */
export function killStarted(): void {
  for (const pid of live) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  live.clear();
}

export interface Spawned {
  child: ChildProcess;
  pid: number;
  /** Stops the process (and, through its process group, its children) and waits for it. */
  stop(): Promise<void>;
  /**
   * SIGTERM to the process alone, as an operator stopping a service would, so that it shuts down its own
   * children; waits for it (SIGKILL to the group after `graceMs`).
   */
  terminate(graceMs?: number): Promise<void>;
}

/**
 * Starts `cmd args` pinned to `cpu` with `taskset -c` (taskset execs, so the pid is the command's own) in
 * its own process group; output goes to `logFile` (or is dropped).
 */
export function spawnPinned(cpu: string, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; logFile?: string; onLine?: (line: string) => void } = {}): Spawned {
  const child = spawn('taskset', ['-c', cpu, cmd, ...args], {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
  const log = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
  let partial = '';
  const onData = (chunk: Buffer): void => {
    log?.write(chunk);
    if (!opts.onLine) return;
    partial += chunk.toString('utf8');
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) opts.onLine(line);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = once(child, 'exit').then(() => log?.end());
  const pid = child.pid;
  live.add(pid);
  void exited.then(() => live.delete(pid));
  /** SIGTERM to `target` (the pid, or the group as -pid), a wait, then SIGKILL to what is left of the group. */
  const end = async (target: number, graceMs: number): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(target, 'SIGTERM');
      } catch {
        return;
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }, graceMs);
      await exited;
      clearTimeout(timer);
    }
    // Reap any stragglers of the group that outlived their parent.
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // none left
    }
  };
  return {
    child,
    pid,
    stop: () => end(-pid, 3000),
    terminate: (graceMs = 20000) => end(pid, graceMs),
  };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

export interface HttpResult { status: number; body: string; ms: number }

/** One HTTP request on a keep-alive connection; `ms` is the time from sending to the end of the body. */
export function request(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; timeoutMs?: number; fresh?: boolean; agent?: http.Agent } = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: opts.fresh ? false : (opts.agent ?? agent) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), ms: Number(process.hrtime.bigint() - start) / 1e6 }));
      res.on('error', reject);
    });
    req.setTimeout(opts.timeoutMs ?? 30000, () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Polls `url` until it answers 2xx; returns ms from `startNs` (hrtime) to that first good answer. */
export async function waitForOk(url: string, startNs: bigint, timeoutMs = 30000, isAlive: () => boolean = () => true): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await request(url, { fresh: true, timeoutMs: 5000 });
      if (res.status >= 200 && res.status < 300) return Number(process.hrtime.bigint() - startNs) / 1e6;
    } catch {
      // not listening yet
    }
    if (!isAlive()) throw new Error(`process exited before ${url} answered`);
    if (Date.now() > deadline) throw new Error(`no 2xx from ${url} within ${timeoutMs} ms`);
    await sleep(2);
  }
}

export function closeAgent(): void {
  agent.destroy();
}
