// density: memory of N idle functions, as PSS (/proc/<pid>/smaps_rollup summed over the process tree).
//   continuum: fresh node → PSS baseline; deploy N functions, call each once (so each has an instance),
//              leave them idle (IDLE_MS), PSS again; per function = (loaded − baseline) / N.
//   workerd:   a router-only config (baseline) vs the router plus N static workers, each called once.
//   node:      one node:http process per function (the plain-Node way to keep functions apart):
//              M processes (default 20, fewer than N to spare the machine), total PSS / M.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundles } from '../lib/bundle.ts';
import { treePssMb } from '../lib/proc.ts';
import { median, round } from '../lib/stats.ts';
import { addRatios, errorMessage, Samples, type Metrics, type Options, type ScenarioReport, type TargetName } from '../lib/types.ts';
import { request, sleep } from '../lib/util.ts';
import { Continuum } from '../targets/continuum.ts';
import { startNode, type NodeServer } from '../targets/node.ts';
import { densityConfig, startWorkerd } from '../targets/workerd.ts';

const SETTLE_MS = 1000;
/**
 * How long the functions have been idle when memory is read: a few seconds after their last request, as
 * idle functions are (Continuum's isolates give their unused heap pages back 5 s after going quiet;
 * the same wait for every target).
 */
const IDLE_MS = 8000;

async function continuumRound(bundles: Bundles, opts: Options, round: number): Promise<Metrics> {
  const dataDir = join(opts.workDir, `continuum-density-${round}`);
  const c = await Continuum.start(dataDir, join(opts.workDir, `density-continuum-${round}.log`));
  try {
    await request(`${c.url}/healthz`).catch(() => undefined);
    await sleep(SETTLE_MS);
    const base = treePssMb(c.proc.pid);
    let errors = 0;
    for (let i = 0; i < opts.densityN; i++) {
      await c.deploy(`idle-${i}`, bundles.code.hello, { filename: 'hello.js', config: { scale: { maxInstances: 1 } } });
    }
    for (let i = 0; i < opts.densityN; i++) {
      const res = await request(c.fnUrl(`idle-${i}`)).catch(() => undefined);
      if (res?.status !== 200) errors++;
    }
    await sleep(IDLE_MS);
    const loaded = treePssMb(c.proc.pid);
    return { pss_mb_per_fn: (loaded - base) / opts.densityN, pss_mb_total: loaded, pss_mb_base: base, errors };
  } finally {
    await c.proc.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function workerdRound(bundles: Bundles, opts: Options): Promise<Metrics> {
  const baseServer = await startWorkerd(bundles.dir, 'density_base', (port) => densityConfig(port, bundles.files.hello, 0, bundles.dir));
  let base: number;
  try {
    await sleep(SETTLE_MS);
    base = treePssMb(baseServer.proc.pid);
  } finally {
    await baseServer.proc.stop();
  }
  const s = await startWorkerd(bundles.dir, 'density_full', (port) => densityConfig(port, bundles.files.hello, opts.densityN, bundles.dir));
  try {
    let errors = 0;
    for (let i = 0; i < opts.densityN; i++) {
      const res = await request(`${s.url}w/${i}/`).catch(() => undefined);
      if (res?.status !== 200) errors++;
    }
    await sleep(IDLE_MS);
    const loaded = treePssMb(s.proc.pid);
    return { pss_mb_per_fn: (loaded - base) / opts.densityN, pss_mb_total: loaded, pss_mb_base: base, errors, startup_ms: s.startMs };
  } finally {
    await s.proc.stop();
  }
}

async function nodeRound(opts: Options): Promise<Metrics> {
  const servers: NodeServer[] = [];
  try {
    let errors = 0;
    for (let i = 0; i < opts.densityNodeN; i++) servers.push(await startNode('hello'));
    for (const s of servers) {
      const res = await request(s.url).catch(() => undefined);
      if (res?.status !== 200) errors++;
    }
    await sleep(IDLE_MS);
    let total = 0;
    for (const s of servers) total += treePssMb(s.proc.pid);
    return { pss_mb_per_fn: total / servers.length, pss_mb_total: total, processes: servers.length, errors };
  } finally {
    for (const s of servers) await s.proc.stop();
  }
}

export async function densityScenario(bundles: Bundles, opts: Options, notes: string[]): Promise<ScenarioReport> {
  const samples = new Samples();
  for (let r = 1; r <= opts.rounds; r++) {
    for (const target of opts.targets) {
      try {
        const m = target === 'continuum' ? await continuumRound(bundles, opts, r)
          : target === 'workerd' ? await workerdRound(bundles, opts)
            : await nodeRound(opts);
        for (const [k, v] of Object.entries(m)) samples.add(target, k, v);
        opts.log(`density round ${r}/${opts.rounds} ${target}: ${m.pss_mb_per_fn?.toFixed(2)} MB PSS per function (total ${m.pss_mb_total?.toFixed(1)} MB, errors ${m.errors})`);
      } catch (err) {
        samples.add(target, 'errors', 1);
        notes.push(`density/${target} round ${r}: ${errorMessage(err)}`);
        opts.log(`density round ${r}/${opts.rounds} ${target} FAILED: ${errorMessage(err)}`);
      }
    }
  }
  const report: ScenarioReport = {};
  for (const target of samples.targets() as TargetName[]) {
    const m: Metrics = {};
    for (const metric of samples.metrics(target)) {
      const list = samples.get(target, metric);
      m[metric] = metric === 'errors' ? list.reduce((a, b) => a + b, 0) : round(median(list));
    }
    m.functions = target === 'node' ? opts.densityNodeN : opts.densityN;
    report[target] = m;
  }
  addRatios(report, [['continuum', 'workerd'], ['continuum', 'node'], ['workerd', 'node']], ['pss_mb_per_fn']);
  return report;
}
