// Prints the Markdown results tables of docs/benchmarks.md from a JSON report.
//   node bench/report.ts [FILE]   (default bench/results/last.json)
import { readFileSync } from 'node:fs';

type Metrics = Record<string, number>;
type Report = { env: Record<string, unknown>; scenarios: Record<string, Record<string, Metrics>> };

const file = process.argv[2] ?? 'bench/results/last.json';
const report = JSON.parse(readFileSync(file, 'utf8')) as Report;
const TARGETS = ['continuum', 'workerd', 'node'];

const COLUMNS: Record<string, [string, string][]> = {
  warm_hello: [['rps', 'rps'], ['cpu_us_per_req', 'CPU µs/req'], ['cpu_bound_rps', 'rps per full core'], ['p50_ms', 'p50 ms'], ['p99_ms', 'p99 ms'], ['server_cpu_pct', 'server CPU %'], ['loadgen_cpu_pct', 'wrk CPU %'], ['pss_mb', 'PSS MB'], ['errors', 'errors']],
  cold_start: [['p50_ms', 'cold p50 ms'], ['p99_ms', 'cold p99 ms'], ['deploy_p50_ms', 'deploy→first response p50 ms'], ['deploy_p99_ms', 'deploy p99 ms'], ['server_queue_p50_ms', 'server queueMs p50'], ['server_init_p50_ms', 'server initMs p50'], ['server_exec_p50_ms', 'server execMs p50'], ['errors', 'errors']],
  density: [['pss_mb_per_fn', 'PSS MB per function'], ['pss_mb_base', 'baseline PSS MB'], ['pss_mb_total', 'total PSS MB'], ['functions', 'functions'], ['errors', 'errors']],
};
COLUMNS.warm_html = COLUMNS.warm_hello as [string, string][];

const fmt = (v: number | undefined): string => {
  if (v === undefined) return '–';
  if (Number.isInteger(v)) return Math.abs(v) >= 10000 ? v.toLocaleString('en-US') : String(v);
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
};

const env = report.env;
console.log(`Run of ${String(env.date)} at commit ${String(env.git_commit)}: ${String(env.rounds)} rounds × ${String(env.duration_s)} s, ${String(env.connections)} connections, ${String(env.load_generator)}; load average (1/5/15 min) ${JSON.stringify(env.loadavg_at_start)} at start, ${JSON.stringify(env.loadavg_at_end ?? '?')} at end.\n`);
for (const [scenario, byTarget] of Object.entries(report.scenarios)) {
  const cols = COLUMNS[scenario];
  if (!cols) continue;
  console.log(`### ${scenario}\n`);
  console.log(`| target | ${cols.map(([, h]) => h).join(' | ')} |`);
  console.log(`|---|${cols.map(() => '---:').join('|')}|`);
  for (const target of TARGETS) {
    const m = byTarget[target];
    if (!m) {
      console.log(`| ${target} | ${cols.map(() => 'pending').join(' | ')} |`);
      continue;
    }
    console.log(`| ${target} | ${cols.map(([k]) => fmt(m[k])).join(' | ')} |`);
  }
  const ratios = byTarget.ratios;
  if (ratios) console.log(`\nRatios: ${Object.entries(ratios).filter(([k]) => !/p99|cpu_bound/.test(k)).map(([k, v]) => `\`${k}\` ${v}`).join(', ')}.`);
  console.log('');
}
const notes = env.notes as string[] | undefined;
if (notes && notes.length > 0) console.log(`Notes from the run:\n\n${notes.map((n) => `- ${n}`).join('\n')}\n`);
