// Checks the benchmark bars against a JSON report written by `npm run bench -- --json FILE`.
//   node bench/check.ts [FILE]   (default bench/results/last.json)
// Prints PASS/FAIL per bar (FAIL when a figure is missing) and exits 1 when any bar fails.
import { readFileSync } from 'node:fs';

type Report = { scenarios?: Record<string, Record<string, Record<string, number>>> };

const file = process.argv[2] ?? 'bench/results/last.json';
let report: Report;
try {
  report = JSON.parse(readFileSync(file, 'utf8')) as Report;
} catch (err) {
  console.error(`cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(2);
}

function metric(scenario: string, target: string, name: string): number | undefined {
  const v = report.scenarios?.[scenario]?.[target]?.[name];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

interface Bar { name: string; actual: number | undefined; limit: number | undefined; op: '>=' | '<='; unit: string }

const hello = (t: string): number | undefined => metric('warm_hello', t, 'rps');
const scaled = (v: number | undefined, f: number): number | undefined => (v === undefined ? undefined : v * f);

const bars: Bar[] = [
  { name: 'warm_hello: continuum rps >= 1.0 x workerd rps', actual: hello('continuum'), limit: hello('workerd'), op: '>=', unit: 'rps' },
  { name: 'warm_hello: continuum rps >= 0.35 x node rps', actual: hello('continuum'), limit: scaled(hello('node'), 0.35), op: '>=', unit: 'rps' },
  { name: 'cold_start: continuum p50 <= 10 ms', actual: metric('cold_start', 'continuum', 'p50_ms'), limit: 10, op: '<=', unit: 'ms' },
  { name: 'cold_start: continuum p50 <= workerd loader p50', actual: metric('cold_start', 'continuum', 'p50_ms'), limit: metric('cold_start', 'workerd', 'p50_ms'), op: '<=', unit: 'ms' },
  { name: 'density: continuum PSS per function <= 4 MB', actual: metric('density', 'continuum', 'pss_mb_per_fn'), limit: 4, op: '<=', unit: 'MB' },
];

const fmt = (v: number): string => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2));
let failed = 0;
for (const bar of bars) {
  if (bar.actual === undefined || bar.limit === undefined) {
    failed++;
    console.log(`FAIL  ${bar.name}  (no figure in ${file})`);
    continue;
  }
  const ok = bar.op === '>=' ? bar.actual >= bar.limit : bar.actual <= bar.limit;
  if (!ok) failed++;
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${bar.name}  (${fmt(bar.actual)} ${bar.unit} ${bar.op} ${fmt(bar.limit)} ${bar.unit})`);
}
console.log(failed === 0 ? 'all bars pass' : `${failed} of ${bars.length} bars fail`);
process.exit(failed === 0 ? 0 : 1);
