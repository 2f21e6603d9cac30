// cold_start: latency of the first request to a function that has no instance but whose code is
// cached, and deploy-to-first-response.
//   continuum: DELETE /v1/functions/NAME/instances (scale to zero), then time one GET; deploy = POST a new
//              function version (a fresh name each time) + GET until the first 2xx.
//   workerd:   a Worker Loader front that loads the function under a fresh worker id per request (the
//              code is already in the process, like a cached bundle); deploy = start workerd with a
//              one-worker config + GET until the first 2xx.
//   node:      no cold path below a process start; deploy = start the node:http server + first 2xx.
// Samples are pooled over the rounds; p50/p99 come from the pool.
import { join } from 'node:path';
import type { Bundles } from '../lib/bundle.ts';
import { percentile, round } from '../lib/stats.ts';
import { addRatios, errorMessage, Samples, type Metrics, type Options, type ScenarioReport, type TargetName } from '../lib/types.ts';
import { request, sleep } from '../lib/util.ts';
import { Continuum } from '../targets/continuum.ts';
import { startNode } from '../targets/node.ts';
import { loaderConfig, startWorkerd, warmConfig, type WorkerdServer } from '../targets/workerd.ts';

const SETTLE_MS = 20;

export async function coldScenario(bundles: Bundles, opts: Options, notes: string[]): Promise<ScenarioReport> {
  const samples = new Samples();
  const errors = new Map<TargetName, number>();
  const fail = (target: TargetName, what: string, err: unknown): void => {
    errors.set(target, (errors.get(target) ?? 0) + 1);
    notes.push(`cold_start/${target}: ${what}: ${errorMessage(err)}`);
  };
  let continuum: Continuum | undefined;
  let loader: WorkerdServer | undefined;
  const fnName = 'bench-cold';
  let deploySeq = 0;
  try {
    if (opts.targets.includes('continuum')) {
      try {
        continuum = await Continuum.start(join(opts.workDir, 'continuum-cold_start'), join(opts.workDir, 'cold_start-continuum.log'));
        await continuum.deploy(fnName, bundles.code.hello, { filename: 'hello.js', config: { scale: { maxInstances: 1 } } });
        await continuum.firstOk(fnName);
      } catch (err) {
        fail('continuum', 'not started', err);
        await continuum?.proc.stop();
        continuum = undefined;
      }
    }
    if (opts.targets.includes('workerd')) {
      try {
        loader = await startWorkerd(bundles.dir, 'cold_loader', (port) => loaderConfig(port, bundles.files.hello, bundles.dir), { logFile: join(opts.workDir, 'cold_start-workerd.log') });
      } catch (err) {
        fail('workerd', 'loader not started', err);
      }
    }
    for (let r = 1; r <= opts.rounds; r++) {
      for (const target of opts.targets) {
        if (target === 'continuum' && continuum) {
          const c = continuum;
          for (let i = 0; i < opts.coldSamples; i++) {
            try {
              await c.evict(fnName);
              await sleep(SETTLE_MS);
              const res = await request(c.fnUrl(fnName));
              if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${res.body.slice(0, 200)}`);
              samples.add(target, 'cold', res.ms);
            } catch (err) {
              fail(target, 'cold request', err);
            }
          }
          for (let i = 0; i < opts.deploySamples; i++) {
            const name = `bench-deploy-${++deploySeq}`;
            try {
              const t0 = process.hrtime.bigint();
              await c.deploy(name, `${bundles.code.hello}\n// deploy ${deploySeq} ${Date.now()}\n`, { filename: 'hello.js' });
              await c.firstOk(name);
              samples.add(target, 'deploy', Number(process.hrtime.bigint() - t0) / 1e6);
              await c.remove(name);
            } catch (err) {
              fail(target, 'deploy', err);
            }
          }
        } else if (target === 'workerd') {
          if (loader) {
            for (let i = 0; i < opts.coldSamples; i++) {
              try {
                await sleep(SETTLE_MS);
                const res = await request(loader.url);
                if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${res.body.slice(0, 200)}`);
                samples.add(target, 'cold', res.ms);
              } catch (err) {
                fail(target, 'loader request', err);
              }
            }
          }
          for (let i = 0; i < opts.deploySamples; i++) {
            try {
              const s = await startWorkerd(bundles.dir, 'cold_deploy', (port) => warmConfig(port, bundles.files.hello));
              samples.add(target, 'deploy', s.startMs);
              await s.proc.stop();
            } catch (err) {
              fail(target, 'deploy', err);
            }
          }
        } else if (target === 'node') {
          for (let i = 0; i < opts.deploySamples; i++) {
            try {
              const s = await startNode('hello');
              samples.add(target, 'deploy', s.startMs);
              await s.proc.stop();
            } catch (err) {
              fail(target, 'deploy', err);
            }
          }
        }
      }
      opts.log(`cold_start round ${r}/${opts.rounds} done`);
    }
    if (continuum) {
      // Server-side view of the same cold starts, when the platform records it.
      const records = await continuum.invocations(fnName, opts.coldSamples * opts.rounds + 10).catch(() => []);
      for (const rec of records) {
        if (rec.coldStart !== true) continue;
        const phases = (rec.phases ?? rec) as Record<string, unknown>;
        for (const phase of ['queue', 'init', 'exec']) {
          const v = phases[`${phase}Ms`];
          if (typeof v === 'number') samples.add('continuum', `server_${phase}`, v);
        }
      }
    }
  } finally {
    await continuum?.proc.stop();
    await loader?.proc.stop();
  }
  const report: ScenarioReport = {};
  for (const target of opts.targets) {
    const m: Metrics = {};
    const cold = samples.get(target, 'cold');
    if (cold.length > 0) {
      m.p50_ms = round(percentile(cold, 50));
      m.p99_ms = round(percentile(cold, 99));
      m.samples = cold.length;
    }
    const deploy = samples.get(target, 'deploy');
    if (deploy.length > 0) {
      m.deploy_p50_ms = round(percentile(deploy, 50));
      m.deploy_p99_ms = round(percentile(deploy, 99));
      m.deploy_samples = deploy.length;
    }
    for (const phase of ['queue', 'init', 'exec']) {
      const list = samples.get(target, `server_${phase}`);
      if (list.length > 0) m[`server_${phase}_p50_ms`] = round(percentile(list, 50));
    }
    m.errors = errors.get(target) ?? 0;
    report[target] = m;
  }
  addRatios(report, [['continuum', 'workerd'], ['continuum', 'node'], ['workerd', 'node']], ['p50_ms', 'p99_ms', 'deploy_p50_ms']);
  return report;
}
