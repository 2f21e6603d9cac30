// warm_hello / warm_html: closed-loop load against a warm function on every target, interleaved per round.
import { join } from 'node:path';
import type { Bundles, FunctionName } from '../lib/bundle.ts';
import { runLoad } from '../lib/load.ts';
import { treeCpuUs, treePssMb } from '../lib/proc.ts';
import { median, round } from '../lib/stats.ts';
import { addRatios, errorMessage, Samples, type Options, type ScenarioReport, type TargetName } from '../lib/types.ts';
import { Continuum } from '../targets/continuum.ts';
import { startNode } from '../targets/node.ts';
import { startWorkerd, warmConfig } from '../targets/workerd.ts';

interface Running { url: string; pid: number; stop(): Promise<void> }

const PATHS: Record<FunctionName, string> = { hello: '', html: '?items=1000' };

async function startTarget(target: TargetName, fn: FunctionName, bundles: Bundles, opts: Options): Promise<Running> {
  const log = join(opts.workDir, `warm_${fn}-${target}.log`);
  if (target === 'node') {
    const s = await startNode(fn, log);
    return { url: s.url + PATHS[fn], pid: s.proc.pid, stop: () => s.proc.stop() };
  }
  if (target === 'workerd') {
    const s = await startWorkerd(bundles.dir, `warm_${fn}`, (port) => warmConfig(port, bundles.files[fn]), { logFile: log });
    return { url: s.url + PATHS[fn], pid: s.proc.pid, stop: () => s.proc.stop() };
  }
  const c = await Continuum.start(join(opts.workDir, `continuum-warm_${fn}`), log);
  try {
    const name = `bench-${fn}`;
    await c.deploy(name, bundles.code[fn], { filename: `${fn}.js` });
    await c.firstOk(name, PATHS[fn]);
    return { url: c.fnUrl(name, PATHS[fn]), pid: c.proc.pid, stop: () => c.proc.stop() };
  } catch (err) {
    await c.proc.stop();
    throw err;
  }
}

export async function warmScenario(fn: FunctionName, bundles: Bundles, opts: Options, notes: string[]): Promise<ScenarioReport> {
  const scenario = `warm_${fn}`;
  const running = new Map<TargetName, Running>();
  const samples = new Samples();
  try {
    for (const target of opts.targets) {
      try {
        running.set(target, await startTarget(target, fn, bundles, opts));
        opts.log(`${scenario}: ${target} started`);
      } catch (err) {
        notes.push(`${scenario}/${target}: not started: ${errorMessage(err)}`);
        opts.log(`${scenario}: ${target} FAILED to start: ${errorMessage(err)}`);
      }
    }
    // Warm-up (JIT, caches, connection pools): not measured.
    for (const [target, r] of running) {
      await runLoad(opts.generator, r.url, opts.warmupS, opts.connections).catch((err: unknown) => {
        notes.push(`${scenario}/${target}: warm-up: ${errorMessage(err)}`);
      });
    }
    for (let round = 1; round <= opts.rounds; round++) {
      for (const [target, r] of running) {
        try {
          const cpu0 = treeCpuUs(r.pid);
          const res = await runLoad(opts.generator, r.url, opts.durationS, opts.connections);
          const cpu1 = treeCpuUs(r.pid);
          samples.add(target, 'rps', res.rps);
          samples.add(target, 'cpu_us_per_req', res.requests > 0 ? (cpu1 - cpu0) / res.requests : Number.NaN);
          samples.add(target, 'p50_ms', res.p50Ms);
          samples.add(target, 'p99_ms', res.p99Ms);
          samples.add(target, 'errors', res.errors);
          samples.add(target, 'loadgen_cpu_pct', res.loadgenCpuPct);
          // Share of its core the target got; well under 100 with a generator below 100 means contention.
          samples.add(target, 'server_cpu_pct', ((cpu1 - cpu0) / (res.durationS * 1e6)) * 100);
          samples.add(target, 'pss_mb', treePssMb(r.pid));
          opts.log(`${scenario} round ${round}/${opts.rounds} ${target}: ${Math.round(res.rps)} rps, ${Math.round((cpu1 - cpu0) / Math.max(res.requests, 1))} cpu-us/req, p50 ${res.p50Ms.toFixed(2)} ms, p99 ${res.p99Ms.toFixed(2)} ms, errors ${res.errors}, loadgen ${Math.round(res.loadgenCpuPct)}%`);
        } catch (err) {
          samples.add(target, 'errors', 1);
          notes.push(`${scenario}/${target} round ${round}: ${errorMessage(err)}`);
        }
      }
    }
  } finally {
    for (const r of running.values()) await r.stop();
  }
  const report: ScenarioReport = {};
  for (const target of samples.targets()) {
    const m: Record<string, number> = {};
    for (const metric of samples.metrics(target)) {
      const list = samples.get(target, metric);
      m[metric] = metric === 'errors' ? list.reduce((a, b) => a + b, 0) : round(median(list), metric === 'rps' ? 0 : 3);
    }
    // Throughput one full core would give at the measured CPU cost: robust to CPU contention from other
    // processes on the machine, unlike rps.
    if (m.cpu_us_per_req !== undefined && m.cpu_us_per_req > 0) m.cpu_bound_rps = Math.round(1e6 / m.cpu_us_per_req);
    m.rounds = samples.get(target, 'rps').length;
    report[target] = m;
  }
  addRatios(report, [['continuum', 'workerd'], ['continuum', 'node'], ['workerd', 'node']], ['rps', 'cpu_us_per_req', 'cpu_bound_rps', 'p50_ms', 'p99_ms']);
  return report;
}
