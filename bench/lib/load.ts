// Runs one load test against a URL with the generator pinned to LOAD_CPU: `wrk` when installed
// (bench/setup.sh installs it), otherwise the Node fallback in loadgen.ts.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { cpuUs } from './proc.ts';
import { LOAD_CPU } from './util.ts';

export type Generator = 'wrk' | 'node';

export interface LoadResult {
  requests: number;
  durationS: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** CPU use of the load generator over the run, in % of its one core (≈100 means it was the bottleneck). */
  loadgenCpuPct: number;
}

export function detectGenerator(prefer?: string): Generator {
  if (prefer === 'node') return 'node';
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
  } catch (err) {
    // wrk --version exits 1 after printing its banner; only a missing binary is a failure.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      if (prefer === 'wrk') throw new Error('wrk requested but not installed (run bench/setup.sh as root)');
      return 'node';
    }
  }
  return 'wrk';
}

const luaScript = fileURLToPath(new URL('./wrk-report.lua', import.meta.url));
const loadgenScript = fileURLToPath(new URL('./loadgen.ts', import.meta.url));

interface RawReport {
  requests: number; duration_us: number; p50_us: number; p99_us: number;
  err_connect: number; err_read: number; err_write: number; err_status: number; err_timeout: number;
}

export async function runLoad(generator: Generator, url: string, durationS: number, connections: number): Promise<LoadResult> {
  const args = generator === 'wrk'
    ? ['-c', LOAD_CPU, 'wrk', '-t1', `-c${connections}`, `-d${durationS}s`, '--timeout', '10s', '-s', luaScript, url]
    : ['-c', LOAD_CPU, process.execPath, loadgenScript, url, String(durationS), String(connections)];
  const child = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => { out += c.toString('utf8'); });
  child.stderr.on('data', (c: Buffer) => { out += c.toString('utf8'); });
  // Sample the generator's own CPU time while it runs (the last sample before exit is kept).
  const started = Date.now();
  let lastCpuUs = 0;
  let lastAt = started;
  const sampler = setInterval(() => {
    if (child.pid === undefined) return;
    const c = cpuUs(child.pid);
    if (c > 0) {
      lastCpuUs = c;
      lastAt = Date.now();
    }
  }, 250);
  const [code] = await once(child, 'exit') as [number | null];
  clearInterval(sampler);
  const line = out.split('\n').find((l) => l.startsWith('WRK_JSON ') || l.startsWith('LOADGEN_JSON '));
  if (!line) throw new Error(`load generator failed (exit ${code}): ${out.slice(-500)}`);
  const raw = JSON.parse(line.slice(line.indexOf(' ') + 1)) as RawReport;
  const durationSec = raw.duration_us / 1e6;
  const errors = raw.err_connect + raw.err_read + raw.err_write + raw.err_status + raw.err_timeout;
  return {
    requests: raw.requests,
    durationS: durationSec,
    rps: raw.requests / durationSec,
    p50Ms: raw.p50_us / 1000,
    p99Ms: raw.p99_us / 1000,
    errors,
    loadgenCpuPct: lastAt > started ? (lastCpuUs / ((lastAt - started) * 1000)) * 100 : Number.NaN,
  };
}
