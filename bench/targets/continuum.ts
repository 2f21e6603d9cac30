// The `continuum` target, driven only through the product contract (ARCHITECTURE §4): `continuum up`,
// the admin token in the data dir, the /v1 control API and /fn/<name>/ ingress.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, request, SERVER_CPU, sleep, spawnPinned, type HttpResult, type Spawned } from '../lib/util.ts';

const cliBin = fileURLToPath(new URL('../../bin/continuum.mjs', import.meta.url));

/** A log line as /v1/logs returns it. */
export interface LogLine { invocationId: string; functionName: string; ts: number; message: string }

export class Continuum {
  readonly url: string;
  readonly proc: Spawned;
  readonly token: string;
  readonly startMs: number;

  private constructor(url: string, proc: Spawned, token: string, startMs: number) {
    this.url = url;
    this.proc = proc;
    this.token = token;
    this.startMs = startMs;
  }

  /**
   * Starts one node on SERVER_CPU with its data in `dataDir` (`args` added to `continuum up`, `extraEnv` to its
   * environment); resolves
   * when it prints `ready`.
   */
  static async start(dataDir: string, logFile?: string, timeoutMs = 60000, args: string[] = [], extraEnv: Record<string, string> = {}): Promise<Continuum> {
    const port = await freePort();
    // The container tiers only where a scenario asks for them: their background start-up would skew the others.
    const env: NodeJS.ProcessEnv = { ...process.env, CONTINUUM_CONTAINER_TIERS: '0', ...extraEnv };
    delete env.CONTINUUM_URL;
    delete env.CONTINUUM_TOKEN;
    delete env.PORT;
    delete env.CONTINUUM_DATA;
    let ready!: () => void;
    const readyP = new Promise<void>((resolve) => { ready = resolve; });
    const t0 = process.hrtime.bigint();
    const proc = spawnPinned(SERVER_CPU, process.execPath, [cliBin, 'up', '--port', String(port), '--data-dir', dataDir, ...args], {
      env,
      logFile,
      onLine: (line) => { if (/\bready\b/i.test(line)) ready(); },
    });
    const exited = new Promise<never>((_resolve, reject) => {
      proc.child.once('exit', (code) => reject(new Error(`continuum up exited with ${code} before ready (log: ${logFile ?? 'none'})`)));
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`continuum up not ready within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([readyP, exited, timeout]);
    } catch (err) {
      await proc.stop();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    exited.catch(() => undefined);
    const startMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    return new Continuum(`http://127.0.0.1:${port}`, proc, token, startMs);
  }

  fnUrl(name: string, path = ''): string {
    return `${this.url}/fn/${name}/${path}`;
  }

  private api(method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<HttpResult> {
    return request(`${this.url}${path}`, { method, body, headers: { authorization: `Bearer ${this.token}`, ...headers } });
  }

  /** A JSON control API call; throws unless it answers 2xx. */
  async json<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.api(method, path, body === undefined ? undefined : JSON.stringify(body), body === undefined ? {} : { 'content-type': 'application/json' });
    if (res.status < 200 || res.status >= 300) throw new Error(`${method} ${path}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
    return (res.body === '' ? {} : JSON.parse(res.body)) as T;
  }

  /**
   * Streams log lines (`GET /v1/logs?follow=1`, server-sent events, filtered by `query`) to `onLine` as the node records them;
   * resolves once the response has begun, which proves the node is subscribed (it sends the headers with
   * the first line or its 15 s heartbeat, so this can take that long). The stream ends when the node stops
   * or `close()` is called.
   */
  followLogs(query: Record<string, string>, onLine: (line: LogLine) => void): Promise<{ close(): void }> {
    const qs = new URLSearchParams({ ...query, follow: '1', since: String(Date.now()) });
    return new Promise((resolve, reject) => {
      const req = http.get(`${this.url}/v1/logs?${qs}`, { headers: { authorization: `Bearer ${this.token}` }, agent: false }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`GET /v1/logs: HTTP ${res.statusCode}`));
          return;
        }
        let partial = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          partial += chunk;
          const lines = partial.split('\n');
          partial = lines.pop() ?? '';
          // Server-sent events: a log line is `data: <json>` (event `log`); comments and other fields are skipped.
          for (const line of lines) if (line.startsWith('data: ')) onLine(JSON.parse(line.slice(6)) as LogLine);
        });
        res.on('error', () => undefined);
        resolve({ close: () => req.destroy() });
      });
      req.on('error', reject);
    });
  }

  /** Stored log lines matching `query` (`GET /v1/logs`), newest first. */
  async logs(query: Record<string, string>): Promise<LogLine[]> {
    const res = await this.api('GET', `/v1/logs?${new URLSearchParams(query)}`);
    if (res.status !== 200) throw new Error(`GET /v1/logs: HTTP ${res.status} ${res.body.slice(0, 300)}`);
    return res.body.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as LogLine);
  }

  /** Deploys `code` as function `name` (created if missing); returns the new version id. */
  async deploy(name: string, code: string, opts: { filename?: string; config?: unknown } = {}): Promise<string> {
    const filename = opts.filename ?? 'index.js';
    const headers: Record<string, string> = {
      'content-type': filename.endsWith('.ts') ? 'application/typescript' : 'application/javascript',
    };
    if (opts.config !== undefined) headers['continuum-config'] = JSON.stringify(opts.config);
    const res = await this.api('POST', `/v1/functions/${name}/deploy?filename=${encodeURIComponent(filename)}`, code, headers);
    if (res.status !== 201 && res.status !== 200) throw new Error(`deploy ${name}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
    const parsed = JSON.parse(res.body) as { version?: { id?: string } };
    return parsed.version?.id ?? '';
  }

  /** Scales `name` to zero now (compiled code stays cached). */
  async evict(name: string): Promise<void> {
    const res = await this.api('DELETE', `/v1/functions/${name}/instances`);
    if (res.status >= 300) throw new Error(`evict ${name}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
  }

  /** Best-effort removal of a function. */
  async remove(name: string): Promise<void> {
    await this.api('DELETE', `/v1/functions/${name}`).catch(() => undefined);
  }

  /** Invocation records of `name`, newest first (shape as the API returns them). */
  async invocations(name: string, limit: number): Promise<Record<string, unknown>[]> {
    const res = await this.api('GET', `/v1/invocations?function=${name}&limit=${limit}`);
    if (res.status !== 200) return [];
    const body = JSON.parse(res.body) as unknown;
    if (Array.isArray(body)) return body as Record<string, unknown>[];
    const obj = body as Record<string, unknown>;
    for (const key of ['invocations', 'items', 'records', 'data']) {
      if (Array.isArray(obj[key])) return obj[key] as Record<string, unknown>[];
    }
    return [];
  }

  /** GETs the function until it answers 2xx; returns the last result. */
  async firstOk(name: string, path = '', timeoutMs = 30000): Promise<HttpResult> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const res = await request(this.fnUrl(name, path)).catch(() => undefined);
      if (res && res.status >= 200 && res.status < 300) return res;
      if (Date.now() > deadline) throw new Error(`fn ${name}: no 2xx within ${timeoutMs} ms (last ${res?.status ?? 'error'}: ${res?.body.slice(0, 200) ?? ''})`);
      await sleep(2);
    }
  }
}
