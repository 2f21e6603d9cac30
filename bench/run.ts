// `npm run bench`: Continuum side by side with workerd and a plain node:http server, and its events on each
// queue store backend (ARCHITECTURE §5).
//
//   node bench/run.ts [--scenarios warm_hello,warm_html,cold_start,density,queue_throughput,cron_jitter,tier_cold_start,tier_warm]
//                     [--targets continuum,workerd,node,continuum-sqlite,continuum-nats,continuum-isolate,continuum-process,
//                                continuum-container,continuum-gvisor,runc,runsc]
//                     [--rounds 5] [--duration 10] [--connections 32] [--quick] [--json FILE]
//                     [--generator wrk|node] [--cold-samples 20] [--deploy-samples 3]
//                     [--density-n 200] [--density-node-n 20] [--queue-messages 20000]
//                     [--queue-runs b10_1kb,…] [--latency-messages 1000] [--cron-duration 30] [--cron-restart-duration 600] [--tier-samples 10] [--keep]
//
// The HTTP scenarios run the targets continuum, workerd and node; queue_throughput and cron_jitter run
// continuum-sqlite and continuum-nats; tier_cold_start and tier_warm run Continuum on each tier and the bare
// tools (node, runc, runsc). The load generator (and this runner) is pinned to CPU 0, everything
// under test to CPU 1. A benchmark never fails a test run: problems are recorded in env.notes and the exit
// code stays 0; bench/check.ts judges the bars from the JSON.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { bundleFunctions } from './lib/bundle.ts';
import { detectGenerator } from './lib/load.ts';
import { ALL_TARGETS, errorMessage, EVENT_TARGETS, HTTP_TARGETS, TIER_TARGETS, type EventTarget, type HttpTarget, type Options, type ScenarioReport, type TierTarget } from './lib/types.ts';
import { closeAgent, cpuProbeMs, killStarted, LOAD_CPU, SERVER_CPU } from './lib/util.ts';
import { coldScenario } from './scenarios/cold.ts';
import { CRON_FUNCTIONS, cronScenario, RESTART_FUNCTIONS } from './scenarios/cron.ts';
import { densityScenario } from './scenarios/density.ts';
import { LATENCY_RATE_PER_S, QUEUE_PRODUCER, QUEUE_TRIGGER, queueScenario } from './scenarios/queue.ts';
import { tierColdScenario, tierWarmScenario, TIER_SETTLE_MS } from './scenarios/tiers.ts';
import { warmScenario } from './scenarios/warm.ts';
import { natsServerBin } from './targets/nats.ts';
import { workerdBin } from './targets/workerd.ts';

const SCENARIOS = ['warm_hello', 'warm_html', 'cold_start', 'density', 'queue_throughput', 'cron_jitter', 'tier_cold_start', 'tier_warm'] as const;
const TIER_SCENARIOS: readonly ScenarioName[] = ['tier_cold_start', 'tier_warm'];
const EVENT_SCENARIOS: readonly ScenarioName[] = ['queue_throughput', 'cron_jitter'];
type ScenarioName = (typeof SCENARIOS)[number];

const { values: args } = parseArgs({
  options: {
    scenarios: { type: 'string' },
    targets: { type: 'string' },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    connections: { type: 'string' },
    warmup: { type: 'string' },
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
    generator: { type: 'string' },
    'cold-samples': { type: 'string' },
    'deploy-samples': { type: 'string' },
    'density-n': { type: 'string' },
    'density-node-n': { type: 'string' },
    'queue-messages': { type: 'string' },
    'queue-runs': { type: 'string' },
    'latency-messages': { type: 'string' },
    'cron-duration': { type: 'string' },
    'cron-restart-duration': { type: 'string' },
    'tier-samples': { type: 'string' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (args.help) {
  console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(0, 14).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
  process.exit(0);
}

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const log = (msg: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};

function list<T extends string>(value: string | undefined, allowed: readonly T[], what: string): T[] {
  if (!value) return [...allowed];
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    if (!allowed.includes(item as T)) {
      console.error(`unknown ${what} "${item}" (choose from ${allowed.join(', ')})`);
      process.exit(1);
    }
  }
  return items as T[];
}

function num(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) {
    console.error(`not a positive number: ${value}`);
    process.exit(1);
  }
  return n;
}

function tryRun(cmd: string, argv: string[]): string {
  try {
    return execFileSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

const quick = args.quick;
const scenarios = list(args.scenarios, SCENARIOS, 'scenario');
const targets = list(args.targets, ALL_TARGETS, 'target');
// Each scenario runs the chosen targets of its kind.
const httpTargets = targets.filter((t): t is HttpTarget => (HTTP_TARGETS as readonly string[]).includes(t));
const eventTargets = targets.filter((t): t is EventTarget => (EVENT_TARGETS as readonly string[]).includes(t));
const tierTargets = targets.filter((t): t is TierTarget => (TIER_TARGETS as readonly string[]).includes(t));
const eventScenarios = scenarios.some((s) => EVENT_SCENARIOS.includes(s));
const httpScenarios = scenarios.some((s) => !EVENT_SCENARIOS.includes(s));

// The load generator of the HTTP scenarios: wrk, installed by bench/setup.sh when missing and running as root.
if (httpScenarios && (httpTargets.length > 0 || tierTargets.length > 0) && args.generator !== 'node') {
  let gen = detectGenerator();
  if (gen !== 'wrk') {
    spawnSync('sh', [join(repoRoot, 'bench', 'setup.sh')], { stdio: 'inherit' });
    gen = detectGenerator();
  }
  if (gen !== 'wrk' && args.generator === 'wrk') {
    console.error('wrk is not available (bench/setup.sh needs root and apt-get)');
    process.exit(1);
  }
}

const workDir = mkdtempSync(join(os.tmpdir(), 'continuum-bench-'));
const opts: Options = {
  rounds: num(args.rounds, quick ? 1 : 5),
  durationS: num(args.duration, quick ? 2 : 10),
  warmupS: num(args.warmup, quick ? 1 : 3),
  connections: num(args.connections, 32),
  generator: detectGenerator(args.generator),
  coldSamples: num(args['cold-samples'], quick ? 5 : 20),
  deploySamples: num(args['deploy-samples'], quick ? 1 : 3),
  densityN: num(args['density-n'], quick ? 20 : 200),
  densityNodeN: num(args['density-node-n'], quick ? 3 : 20),
  queueMessages: num(args['queue-messages'], quick ? 2000 : 20000),
  ...(args['queue-runs'] ? { queueRuns: args['queue-runs'].split(',').map((r) => r.trim()) } : {}),
  latencyMessages: num(args['latency-messages'], quick ? 200 : 1000),
  cronDurationS: num(args['cron-duration'], quick ? 10 : 30),
  cronRestartDurationS: num(args['cron-restart-duration'], quick ? 60 : 600),
  tierSamples: num(args['tier-samples'], quick ? 3 : 10),
  workDir,
  targets: httpTargets,
  log,
};

// Pin this runner (the cold-start client) and, through taskset in load.ts, the generator to LOAD_CPU.
spawnSync('taskset', ['-a', '-pc', LOAD_CPU, String(process.pid)], { stdio: 'ignore' });

const onSignal = (): void => {
  killStarted();
  process.exit(130);
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

const notes: string[] = [];
const report: { env: Record<string, unknown>; scenarios: Record<string, ScenarioReport> } = {
  env: {
    date: new Date().toISOString(),
    git_commit: tryRun('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD']),
    node: process.version,
    workerd: tryRun(workerdBin, ['--version']),
    cpu_model: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.cpus().length,
    mem_gib: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    loadavg_at_start: os.loadavg().map((l) => Math.round(l * 100) / 100),
    cpu_probe_ms_at_start: cpuProbeMs(),
    load_generator: opts.generator === 'wrk' ? `wrk (${tryRun('sh', ['-c', 'wrk --version 2>&1 | head -1']).split(' ').slice(0, 2).join(' ')}), 1 thread` : 'node raw-socket generator (bench/lib/loadgen.ts)',
    load_cpu: Number(LOAD_CPU),
    server_cpu: Number(SERVER_CPU),
    quick,
    rounds: opts.rounds,
    duration_s: opts.durationS,
    warmup_s: opts.warmupS,
    connections: opts.connections,
    cold_samples_per_round: opts.coldSamples,
    deploy_samples_per_round: opts.deploySamples,
    density_functions: opts.densityN,
    density_node_processes: opts.densityNodeN,
    ...(scenarios.some((s) => TIER_SCENARIOS.includes(s)) ? { tier_samples_per_round: opts.tierSamples, tier_settle_ms: TIER_SETTLE_MS } : {}),
    ...(eventScenarios
      ? {
          nats_server: tryRun(natsServerBin() ?? 'nats-server', ['--version']).replace(/^nats-server:\s*/, ''),
          queue_messages_per_run: opts.queueMessages,
          queue_trigger: QUEUE_TRIGGER,
          queue_producer: QUEUE_PRODUCER,
          latency_messages_per_run: opts.latencyMessages,
          latency_rate_per_s: LATENCY_RATE_PER_S,
          cron_functions: CRON_FUNCTIONS,
          cron_duration_s: opts.cronDurationS,
          cron_restart_functions: RESTART_FUNCTIONS,
          cron_restart_duration_s: opts.cronRestartDurationS,
        }
      : {}),
    scenarios,
    targets,
    notes,
  },
  scenarios: {},
};

log(`work dir ${workDir}; generator ${opts.generator}; ${opts.rounds} round(s) of ${opts.durationS}s; targets ${targets.join(',')}`);
try {
  const bundles = await bundleFunctions(workDir);
  for (const scenario of scenarios as ScenarioName[]) {
    const kindTargets = EVENT_SCENARIOS.includes(scenario) ? eventTargets : TIER_SCENARIOS.includes(scenario) ? tierTargets : httpTargets;
    if (kindTargets.length === 0) {
      log(`scenario ${scenario}: skipped (none of its targets chosen)`);
      continue;
    }
    log(`scenario ${scenario}`);
    try {
      if (scenario === 'queue_throughput') report.scenarios[scenario] = await queueScenario(opts, notes, eventTargets);
      else if (scenario === 'cron_jitter') report.scenarios[scenario] = await cronScenario(opts, notes, eventTargets);
      else if (scenario === 'warm_hello') report.scenarios[scenario] = await warmScenario('hello', bundles, opts, notes);
      else if (scenario === 'warm_html') report.scenarios[scenario] = await warmScenario('html', bundles, opts, notes);
      else if (scenario === 'cold_start') report.scenarios[scenario] = await coldScenario(bundles, opts, notes);
      else if (scenario === 'tier_cold_start') report.scenarios[scenario] = await tierColdScenario(bundles, opts, notes, tierTargets);
      else if (scenario === 'tier_warm') report.scenarios[scenario] = await tierWarmScenario(bundles, opts, notes, tierTargets);
      else report.scenarios[scenario] = await densityScenario(bundles, opts, notes);
    } catch (err) {
      notes.push(`${scenario}: ${errorMessage(err)}`);
      log(`scenario ${scenario} failed: ${errorMessage(err)}`);
    }
  }
} finally {
  killStarted();
  closeAgent();
}

report.env.loadavg_at_end = os.loadavg().map((l) => Math.round(l * 100) / 100);
report.env.cpu_probe_ms_at_end = cpuProbeMs();
printSummary(report.scenarios);
for (const note of notes) log(`note: ${note}`);
if (args.json) {
  mkdirSync(dirname(args.json), { recursive: true });
  writeFileSync(args.json, `${JSON.stringify(report, null, 2)}\n`);
  log(`wrote ${args.json}`);
}
if (args.keep || notes.length > 0) log(`logs kept in ${workDir}`);
else rmSync(workDir, { recursive: true, force: true });

function printSummary(results: Record<string, ScenarioReport>): void {
  for (const [scenario, byTarget] of Object.entries(results)) {
    console.log(`\n${scenario}`);
    for (const [target, metrics] of Object.entries(byTarget)) {
      const cells = Object.entries(metrics).map(([k, v]) => `${k}=${v}`);
      console.log(`  ${target.padEnd(16)} ${cells.join('  ')}`);
    }
  }
}

