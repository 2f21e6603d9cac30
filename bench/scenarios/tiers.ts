// tier_cold_start / tier_warm: the same hello function on every tier of the continuum, beside the bare tools
// each tier stands on, in one run (issue: "The Linux side of the continuum", benchmarks).
//
//   continuum-<tier> (isolate, process, container, gvisor): one node with the container tiers on, one function
//               per tier from the same bundled hello.js.
//               cold: scale to zero (DELETE /v1/functions/NAME/instances), wait TIER_SETTLE_MS (pools and
//               spares refill as they would between real cold starts), time one GET.
//               warm: wrk against the function; rps and the node's process-tree CPU per request.
//   node:       `node -e` serving the same bundled handler on node:http: spawn → first 2xx (process's bar).
//   runc/runsc: `runc run` / `runsc run` of the image `continuum image build` makes of the same function
//               (GET /v1/functions/NAME/image), on the host network: spawn → first 2xx (the container and
//               gvisor bars). runsc runs on the platform the node detected.
// Every spawned process is pinned to SERVER_CPU like the other targets. A tier the host cannot run is
// recorded in env.notes, never faked.
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { ContainerDriver } from '../../src/drivers/container/driver.ts';
import type { Bundles } from '../lib/bundle.ts';
import { runLoad } from '../lib/load.ts';
import { treeCpuUs } from '../lib/proc.ts';
import { median, percentile, round } from '../lib/stats.ts';
import { addRatios, errorMessage, Samples, type Metrics, type Options, type ScenarioReport, type TierTarget } from '../lib/types.ts';
import { freePort, request, SERVER_CPU, sleep, spawnPinned, waitForOk } from '../lib/util.ts';
import { Continuum } from '../targets/continuum.ts';

const run = promisify(execFile);

/** Pause after scale-to-zero before the timed request: long enough for every tier's pool to refill. */
export const TIER_SETTLE_MS = 1000;
const TIERS = ['isolate', 'process', 'container', 'gvisor'] as const;
type Tier = (typeof TIERS)[number];
const fnName = (tier: Tier) => `tier-${tier}`;

/** `node -e`: the bundled handler behind node:http, the way a process-per-function platform would start it. */
const NODE_SERVER = `import http from 'node:http';
const { default: fn } = await import(process.argv[1]);
http.createServer(async (req, res) => {
  const r = await fn.fetch(new Request('http://' + req.headers.host + req.url, { method: req.method }));
  res.writeHead(r.status, Object.fromEntries(r.headers));
  res.end(Buffer.from(await r.arrayBuffer()));
}).listen(Number(process.argv[2]), '127.0.0.1');`;

type Spec = Record<string, unknown> & { process: { env: string[] } };

/** One bare `runc run`/`runsc run` of an unpacked image: time from spawn to its first 2xx on the host network. */
class BareRuntime {
  readonly #runtime: 'runc' | 'runsc';
  readonly #globalArgs: string[];
  readonly #bundle: string;
  readonly #config: Spec;
  #seq = 0;

  private constructor(runtime: 'runc' | 'runsc', globalArgs: string[], bundle: string, config: Spec) {
    this.#runtime = runtime;
    this.#globalArgs = globalArgs;
    this.#bundle = bundle;
    this.#config = config;
  }

  /** Unpacks `image` (OCI layout tar) with the node's own importer and writes runc's default spec for it. */
  static async prepare(runtime: 'runc' | 'runsc', image: Buffer, dir: string, platform: string | null): Promise<BareRuntime> {
    const driver = new ContainerDriver({ runtime: 'runc', imageDir: join(dir, 'store') });
    await driver.start();
    try {
      const stored = await driver.images.import(Readable.from([image]));
      const bundle = join(dir, 'bundle');
      mkdirSync(bundle, { recursive: true });
      execFileSync('runc', ['spec', '--bundle', bundle]);
      const config = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
      config.process.terminal = false;
      config.process.args = stored.config.args;
      config.process.env = stored.config.env.filter((e: string) => !e.startsWith('PORT='));
      config.process.user = { uid: stored.config.uid, gid: stored.config.gid };
      config.root = { path: stored.rootfs, readonly: true };
      config.linux.namespaces = config.linux.namespaces.filter((n: { type: string }) => n.type !== 'network');
      config.mounts.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] });
      const state = join(dir, 'state');
      mkdirSync(state, { recursive: true });
      const globalArgs = runtime === 'runc' ? ['--root', state] : ['--root', state, `--platform=${platform ?? 'ptrace'}`, '--network=host'];
      return new BareRuntime(runtime, globalArgs, bundle, config);
    } finally {
      await driver.stop();
    }
  }

  async coldStartMs(): Promise<number> {
    const port = await freePort();
    const id = `bench-bare-${process.pid}-${++this.#seq}`;
    writeFileSync(join(this.#bundle, 'config.json'), JSON.stringify({ ...this.#config, process: { ...this.#config.process, env: [...this.#config.process.env, `PORT=${port}`] } }));
    const t0 = process.hrtime.bigint();
    const proc = spawnPinned(SERVER_CPU, this.#runtime, [...this.#globalArgs, 'run', '--bundle', this.#bundle, id]);
    try {
      return await waitForOk(`http://127.0.0.1:${port}/`, t0, 30_000, () => proc.child.exitCode === null);
    } finally {
      await run(this.#runtime, [...this.#globalArgs, 'kill', id, 'KILL']).catch(() => undefined);
      await proc.stop();
      await run(this.#runtime, [...this.#globalArgs, 'delete', this.#runtime === 'runc' ? '-f' : '-force', id]).catch(() => undefined);
    }
  }
}

async function nodeColdStartMs(bundles: Bundles): Promise<number> {
  const port = await freePort();
  const t0 = process.hrtime.bigint();
  const proc = spawnPinned(SERVER_CPU, process.execPath, ['--input-type=module', '-e', NODE_SERVER, `file://${bundles.files.hello}`, String(port)]);
  try {
    return await waitForOk(`http://127.0.0.1:${port}/`, t0, 30_000, () => proc.child.exitCode === null);
  } finally {
    await proc.stop();
  }
}

/** A node with one hello function per tier it can run; the others are noted with the node's reason. */
async function startContinuum(bundles: Bundles, opts: Options, notes: string[], scenario: string, scale: Record<string, number>): Promise<{ c: Continuum; tiers: Tier[]; platform: string | null }> {
  const c = await Continuum.start(join(opts.workDir, `continuum-${scenario}`), join(opts.workDir, `${scenario}-continuum.log`), 60_000, [], { CONTINUUM_CONTAINER_TIERS: '1' });
  // The container tiers start in the background: wait until every tier has said whether it runs here.
  type Status = { tiers?: Array<{ tier: string; available: boolean; reason?: string }> };
  let status = await c.json<Status>('GET', '/v1/status');
  for (let i = 0; i < 600 && status.tiers?.some((t) => t.reason?.startsWith('starting')); i++) {
    await sleep(200);
    status = await c.json<Status>('GET', '/v1/status');
  }
  const tiers: Tier[] = [];
  let platform: string | null = null;
  for (const tier of TIERS) {
    const s = status.tiers?.find((t) => t.tier === tier);
    if (!s?.available) {
      notes.push(`${scenario}/continuum-${tier}: tier unavailable: ${s?.reason ?? 'not reported'}`);
      continue;
    }
    if (tier === 'gvisor') platform = /platform (\w+)/.exec(s.reason ?? '')?.[1] ?? null;
    try {
      await c.deploy(fnName(tier), bundles.code.hello, { filename: 'hello.js', config: { tier, scale } });
      await c.firstOk(fnName(tier), '', 120_000);
      tiers.push(tier);
    } catch (err) {
      notes.push(`${scenario}/continuum-${tier}: ${errorMessage(err)}`);
    }
  }
  return { c, tiers, platform };
}

export async function tierColdScenario(bundles: Bundles, opts: Options, notes: string[], targets: TierTarget[]): Promise<ScenarioReport> {
  const samples = new Samples();
  const errors = new Map<string, number>();
  const fail = (target: string, err: unknown): void => {
    errors.set(target, (errors.get(target) ?? 0) + 1);
    notes.push(`tier_cold_start/${target}: ${errorMessage(err)}`);
  };
  // One instance each: scale to zero then has one instance to stop, and the next request is a cold start.
  const { c, tiers, platform } = await startContinuum(bundles, opts, notes, 'tier_cold_start', { maxInstances: 1 });
  const bare = new Map<'runc' | 'runsc', BareRuntime>();
  try {
    for (const runtime of ['runc', 'runsc'] as const) {
      const tier: Tier = runtime === 'runc' ? 'container' : 'gvisor';
      if (!targets.includes(runtime)) continue;
      if (!tiers.includes(tier)) {
        notes.push(`tier_cold_start/${runtime}: not run (the ${tier} tier is unavailable, so is its image)`);
        continue;
      }
      try {
        const image = await fetch(`${c.url}/v1/functions/${fnName(tier)}/image`, { headers: { authorization: `Bearer ${c.token}` } });
        if (!image.ok) throw new Error(`image export: HTTP ${image.status} ${(await image.text()).slice(0, 200)}`);
        const dir = join(opts.workDir, `bare-${runtime}`);
        bare.set(runtime, await BareRuntime.prepare(runtime, Buffer.from(await image.arrayBuffer()), dir, platform));
      } catch (err) {
        fail(runtime, err);
      }
    }
    const plan: Array<[TierTarget, () => Promise<number>]> = [];
    for (const tier of tiers) {
      const target = `continuum-${tier}` as TierTarget;
      if (!targets.includes(target)) continue;
      plan.push([
        target,
        async () => {
          await c.evict(fnName(tier));
          await sleep(TIER_SETTLE_MS);
          const res = await request(c.fnUrl(fnName(tier)));
          if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${res.body.slice(0, 200)}`);
          return res.ms;
        },
      ]);
    }
    if (targets.includes('node')) plan.push(['node', () => nodeColdStartMs(bundles)]);
    for (const [runtime, b] of bare) plan.push([runtime, () => b.coldStartMs()]);
    for (let r = 1; r <= opts.rounds; r++) {
      for (const [target, sample] of plan) {
        for (let i = 0; i < opts.tierSamples; i++) {
          try {
            samples.add(target, 'cold', await sample());
          } catch (err) {
            fail(target, err);
          }
        }
      }
      opts.log(`tier_cold_start round ${r}/${opts.rounds}: ${plan.map(([t]) => `${t} p50 ${round(percentile(samples.get(t, 'cold'), 50))} ms`).join(', ')}`);
    }
  } finally {
    await c.proc.stop();
  }
  const report: ScenarioReport = {};
  for (const target of targets) {
    const cold = samples.get(target, 'cold');
    const failures = errors.get(target) ?? 0;
    if (cold.length === 0 && failures === 0) continue;
    const m: Metrics = { errors: failures };
    if (cold.length > 0) Object.assign(m, { p50_ms: round(percentile(cold, 50)), p99_ms: round(percentile(cold, 99)), samples: cold.length });
    report[target] = m;
  }
  addRatios(report, [['continuum-process', 'node'], ['continuum-container', 'runc'], ['continuum-gvisor', 'runsc'], ['continuum-isolate', 'node']], ['p50_ms', 'p99_ms']);
  return report;
}

export async function tierWarmScenario(bundles: Bundles, opts: Options, notes: string[], targets: TierTarget[]): Promise<ScenarioReport> {
  const samples = new Samples();
  // The tiers' own scaling defaults: with 32 connections, one instance of a tier with a low per-instance
  // concurrency would answer part of the load with `overloaded`.
  const { c, tiers } = await startContinuum(bundles, opts, notes, 'tier_warm', {});
  const chosen = tiers.filter((t) => targets.includes(`continuum-${t}` as TierTarget));
  try {
    for (const tier of chosen) {
      await runLoad(opts.generator, c.fnUrl(fnName(tier)), opts.warmupS, opts.connections).catch((err: unknown) => notes.push(`tier_warm/continuum-${tier}: warm-up: ${errorMessage(err)}`));
    }
    for (let r = 1; r <= opts.rounds; r++) {
      for (const tier of chosen) {
        const target = `continuum-${tier}`;
        try {
          const cpu0 = treeCpuUs(c.proc.pid);
          const res = await runLoad(opts.generator, c.fnUrl(fnName(tier)), opts.durationS, opts.connections);
          const cpu1 = treeCpuUs(c.proc.pid);
          samples.add(target, 'rps', res.rps);
          samples.add(target, 'cpu_us_per_req', res.requests > 0 ? (cpu1 - cpu0) / res.requests : Number.NaN);
          samples.add(target, 'p50_ms', res.p50Ms);
          samples.add(target, 'p99_ms', res.p99Ms);
          samples.add(target, 'errors', res.errors);
          opts.log(`tier_warm round ${r}/${opts.rounds} ${target}: ${Math.round(res.rps)} rps, ${Math.round((cpu1 - cpu0) / Math.max(res.requests, 1))} cpu-us/req, p99 ${res.p99Ms.toFixed(2)} ms, errors ${res.errors}`);
        } catch (err) {
          samples.add(target, 'errors', 1);
          notes.push(`tier_warm/${target} round ${r}: ${errorMessage(err)}`);
        }
      }
    }
  } finally {
    await c.proc.stop();
  }
  const report: ScenarioReport = {};
  for (const target of samples.targets()) {
    const m: Metrics = {};
    for (const metric of samples.metrics(target)) {
      const list = samples.get(target, metric);
      m[metric] = metric === 'errors' ? list.reduce((a, b) => a + b, 0) : round(median(list), metric === 'rps' ? 0 : 3);
    }
    report[target] = m;
  }
  return report;
}
