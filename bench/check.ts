// Checks the benchmark bars against JSON reports written by `npm run bench -- --json FILE`.
//   node bench/check.ts [FILE ...]   (default bench/results/last.json)
// Several files are read as one report (e.g. the HTTP run and the events run). Prints PASS/FAIL per bar
// (FAIL when a figure of a scenario that ran is missing, SKIP when the scenario is in none of the files)
// and exits 1 when any bar fails.
import { readFileSync } from 'node:fs';

type Scenarios = Record<string, Record<string, Record<string, number>>>;

const files = process.argv.length > 2 ? process.argv.slice(2) : ['bench/results/last.json'];
const scenarios: Scenarios = {};
for (const file of files) {
  try {
    Object.assign(scenarios, (JSON.parse(readFileSync(file, 'utf8')) as { scenarios?: Scenarios }).scenarios ?? {});
  } catch (err) {
    console.error(`cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(2);
  }
}

function metric(scenario: string, target: string, name: string): number | undefined {
  const v = scenarios[scenario]?.[target]?.[name];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

interface Bar { scenario: string; name: string; actual: number | undefined; limit: number | undefined; op: '>=' | '<='; unit: string }

const hello = (t: string): number | undefined => metric('warm_hello', t, 'rps');
const scaled = (v: number | undefined, f: number): number | undefined => (v === undefined ? undefined : v * f);
const tierCold = (t: string): number | undefined => metric('tier_cold_start', t, 'p50_ms');

const EVENT_TARGETS = ['continuum-sqlite', 'continuum-nats'];

const bars: Bar[] = [
  { scenario: 'warm_hello', name: 'warm_hello: continuum rps >= 1.0 x workerd rps', actual: hello('continuum'), limit: hello('workerd'), op: '>=', unit: 'rps' },
  { scenario: 'warm_hello', name: 'warm_hello: continuum rps >= 0.35 x node rps', actual: hello('continuum'), limit: scaled(hello('node'), 0.35), op: '>=', unit: 'rps' },
  { scenario: 'cold_start', name: 'cold_start: continuum p50 <= 10 ms', actual: metric('cold_start', 'continuum', 'p50_ms'), limit: 10, op: '<=', unit: 'ms' },
  { scenario: 'cold_start', name: 'cold_start: continuum p50 <= workerd loader p50', actual: metric('cold_start', 'continuum', 'p50_ms'), limit: metric('cold_start', 'workerd', 'p50_ms'), op: '<=', unit: 'ms' },
  { scenario: 'density', name: 'density: continuum PSS per function <= 4 MB', actual: metric('density', 'continuum', 'pss_mb_per_fn'), limit: 4, op: '<=', unit: 'MB' },
  // Issue 3 (events), on both queue store backends.
  ...EVENT_TARGETS.flatMap((t): Bar[] => [
    { scenario: 'queue_throughput', name: `queue_throughput: ${t} batch 10, 1 KB >= 5000 msgs/s`, actual: metric('queue_throughput', t, 'msgs_per_s_b10_1kb'), limit: 5000, op: '>=', unit: 'msgs/s' },
    { scenario: 'cron_jitter', name: `cron_jitter: ${t} lateness p99 <= 50 ms`, actual: metric('cron_jitter', t, 'p99_ms'), limit: 50, op: '<=', unit: 'ms' },
    { scenario: 'cron_jitter', name: `cron_jitter: ${t} restart run: no missed fire`, actual: metric('cron_jitter', t, 'restart_missed_fires'), limit: 0, op: '<=', unit: 'fires' },
    { scenario: 'cron_jitter', name: `cron_jitter: ${t} restart run: no double fire`, actual: metric('cron_jitter', t, 'restart_double_fires'), limit: 0, op: '<=', unit: 'fires' },
  ]),
  // Issue 4 (Linux tiers): cold starts against the bare tool of each tier, in the same run.
  { scenario: 'tier_cold_start', name: 'tier_cold_start: continuum-process p50 <= 20 ms', actual: tierCold('continuum-process'), limit: 20, op: '<=', unit: 'ms' },
  { scenario: 'tier_cold_start', name: 'tier_cold_start: continuum-process p50 <= 1.0 x bare node start', actual: tierCold('continuum-process'), limit: tierCold('node'), op: '<=', unit: 'ms' },
  { scenario: 'tier_cold_start', name: 'tier_cold_start: continuum-container p50 <= 1.3 x bare runc run', actual: tierCold('continuum-container'), limit: scaled(tierCold('runc'), 1.3), op: '<=', unit: 'ms' },
  { scenario: 'tier_cold_start', name: 'tier_cold_start: continuum-gvisor p50 <= 1.3 x bare runsc run', actual: tierCold('continuum-gvisor'), limit: scaled(tierCold('runsc'), 1.3), op: '<=', unit: 'ms' },
];

const fmt = (v: number): string => (Number.isInteger(v) || Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2));
let failed = 0;
let skipped = 0;
for (const bar of bars) {
  if (!scenarios[bar.scenario]) {
    skipped++;
    console.log(`SKIP  ${bar.name}  (${bar.scenario} is not in ${files.join(', ')})`);
    continue;
  }
  if (bar.actual === undefined || bar.limit === undefined) {
    failed++;
    console.log(`FAIL  ${bar.name}  (no figure in ${files.join(', ')})`);
    continue;
  }
  const ok = bar.op === '>=' ? bar.actual >= bar.limit : bar.actual <= bar.limit;
  if (!ok) failed++;
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${bar.name}  (${fmt(bar.actual)} ${bar.unit} ${bar.op} ${fmt(bar.limit)} ${bar.unit})`);
}
const judged = bars.length - skipped;
console.log(`${failed === 0 ? `all ${judged} bars judged pass` : `${failed} of ${judged} bars judged fail`}${skipped > 0 ? `; ${skipped} skipped` : ''}`);
process.exit(failed === 0 ? 0 : 1);
