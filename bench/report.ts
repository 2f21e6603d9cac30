// Prints the Markdown results tables of docs/benchmarks.md from a JSON report (HTTP or events scenarios).
//   node bench/report.ts [FILE]   (default bench/results/last.json)
import { readFileSync } from 'node:fs';

type Metrics = Record<string, number>;
type Report = { env: Record<string, unknown>; scenarios: Record<string, Record<string, Metrics>> };

const file = process.argv[2] ?? 'bench/results/last.json';
const report = JSON.parse(readFileSync(file, 'utf8')) as Report;
const HTTP_TARGETS = ['continuum', 'workerd', 'node'];
const EVENT_TARGETS = ['continuum-sqlite', 'continuum-nats'];
const EVENT_SCENARIOS = ['queue_throughput', 'cron_jitter'];

const COLUMNS: Record<string, [string, string][]> = {
  warm_hello: [['rps', 'rps'], ['cpu_us_per_req', 'CPU µs/req'], ['cpu_bound_rps', 'rps per full core'], ['p50_ms', 'p50 ms'], ['p99_ms', 'p99 ms'], ['server_cpu_pct', 'server CPU %'], ['loadgen_cpu_pct', 'wrk CPU %'], ['pss_mb', 'PSS MB'], ['errors', 'errors']],
  cold_start: [['p50_ms', 'cold p50 ms'], ['p99_ms', 'cold p99 ms'], ['deploy_p50_ms', 'deploy→first response p50 ms'], ['deploy_p99_ms', 'deploy p99 ms'], ['server_queue_p50_ms', 'server queueMs p50'], ['server_init_p50_ms', 'server initMs p50'], ['server_exec_p50_ms', 'server execMs p50'], ['errors', 'errors']],
  density: [['pss_mb_per_fn', 'PSS MB per function'], ['pss_mb_base', 'baseline PSS MB'], ['pss_mb_total', 'total PSS MB'], ['functions', 'functions'], ['errors', 'errors']],
};
COLUMNS.warm_html = COLUMNS.warm_hello as [string, string][];
COLUMNS.cron_jitter = [['p50_ms', 'lateness p50 ms'], ['p99_ms', 'lateness p99 ms'], ['max_ms', 'lateness max ms'], ['expected_fires', 'fires expected'], ['missed_fires', 'missed'], ['double_fires', 'double'], ['server_cpu_pct', 'server CPU %'], ['restart_expected_fires', 'restart run: fires expected'], ['restart_missed_fires', 'missed'], ['restart_double_fires', 'double'], ['restart_downtime_ms', 'downtime ms'], ['errors', 'errors']];
/** queue_throughput in two tables: throughput by batch size (rows) and message size, then paced latency. */
const QUEUE_BATCHES = [1, 10, 100];
const QUEUE_COLUMNS: [string, string][] = [['msgs_per_s', 'msgs/s'], ['cpu_us_per_msg', 'CPU µs/msg'], ['server_cpu_pct', 'server CPU %'], ['send_msgs_per_s', 'sent msgs/s']];
const QUEUE_SIZES: [string, string][] = [['64b', '64 B'], ['1kb', '1 KB']];
const LATENCY_COLUMNS: [string, string][] = [['p50_ms_b1', 'p50 ms, batch 1'], ['p99_ms_b1', 'p99 ms, batch 1'], ['p50_ms_b10', 'p50 ms, batch 10'], ['p99_ms_b10', 'p99 ms, batch 10'], ['duplicates', 'duplicates'], ['errors', 'errors']];

const fmt = (v: number | undefined): string => {
  if (v === undefined) return '–';
  if (Number.isInteger(v)) return Math.abs(v) >= 10000 ? v.toLocaleString('en-US') : String(v);
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
};

function table(targets: string[], cols: [string, string][], byTarget: Record<string, Metrics>, rowHead = 'target', rows: [string, (m: Metrics, k: string) => number | undefined][] = [['', (m, k) => m[k]]]): void {
  console.log(`| ${rowHead} | ${cols.map(([, h]) => h).join(' | ')} |`);
  console.log(`|---|${cols.map(() => '---:').join('|')}|`);
  for (const target of targets) {
    for (const [label, get] of rows) {
      const m = byTarget[target];
      const head = label ? `${target}, ${label}` : target;
      console.log(`| ${head} | ${cols.map(([k]) => (m ? fmt(get(m, k)) : 'not run')).join(' | ')} |`);
    }
  }
}

const env = report.env;
const scenarioNames = Object.keys(report.scenarios);
const probe = env.cpu_probe_ms_at_start === undefined ? '' : `; CPU probe (a fixed loop on the server core, lower = faster machine) ${String(env.cpu_probe_ms_at_start ?? '?')} ms at start, ${String(env.cpu_probe_ms_at_end ?? '?')} ms at end`;
const loadavg = `load average (1/5/15 min) ${JSON.stringify(env.loadavg_at_start)} at start, ${JSON.stringify(env.loadavg_at_end ?? '?')} at end${probe}`;
if (scenarioNames.some((s) => !EVENT_SCENARIOS.includes(s))) {
  console.log(`Run of ${String(env.date)} at commit ${String(env.git_commit)}: ${String(env.rounds)} rounds × ${String(env.duration_s)} s, ${String(env.connections)} connections, ${String(env.load_generator)}; ${loadavg}.\n`);
} else {
  console.log(`Run of ${String(env.date)} at commit ${String(env.git_commit)}: ${String(env.rounds)} rounds; nats-server ${String(env.nats_server || 'not installed')}; ${loadavg}.\n`);
}
for (const [scenario, byTarget] of Object.entries(report.scenarios)) {
  if (scenario === 'queue_throughput') {
    const trigger = JSON.stringify(env.queue_trigger);
    const producer = env.queue_producer as { messagesPerRequest?: number; connections?: number } | undefined;
    console.log(`### ${scenario}\n`);
    console.log(`${String(env.queue_messages_per_run)} messages per run, sent ${producer?.messagesPerRequest ?? '?'} per request on ${producer?.connections ?? '?'} connections; trigger \`${trigger}\` plus the batch size. Medians of ${String(env.rounds)} rounds.\n`);
    const cols = QUEUE_SIZES.flatMap(([size, sizeHead]) => QUEUE_COLUMNS.map(([k, h]): [string, string] => [`${k}_${size}`, `${h} ${sizeHead}`]));
    table(EVENT_TARGETS, cols, byTarget, 'target, batch size', QUEUE_BATCHES.map((b) => [`batch ${b}`, (m: Metrics, k: string) => m[k.replace(/_(64b|1kb)$/, `_b${b}_$1`)]]));
    console.log(`\nEnqueue → handler start, ${String(env.latency_messages_per_run)} messages of 64 B per round at ${String(env.latency_rate_per_s)}/s, one per request (samples pooled over the rounds):\n`);
    table(EVENT_TARGETS, LATENCY_COLUMNS, byTarget);
    console.log('');
    continue;
  }
  const cols = COLUMNS[scenario];
  if (!cols) continue;
  const targets = EVENT_SCENARIOS.includes(scenario) ? EVENT_TARGETS : HTTP_TARGETS;
  console.log(`### ${scenario}\n`);
  if (scenario === 'cron_jitter') {
    console.log(`${String(env.cron_functions)} functions with an every-second cron, ${String(env.cron_duration_s)} s per round, ${String(env.rounds)} rounds; restart run: ${String(env.cron_restart_functions)} functions every 10 s for ${String(env.cron_restart_duration_s)} s, SIGTERM and restart halfway.\n`);
  }
  table(targets, cols, byTarget);
  const ratios = byTarget.ratios;
  if (ratios) console.log(`\nRatios: ${Object.entries(ratios).filter(([k]) => !/p99|cpu_bound/.test(k)).map(([k, v]) => `\`${k}\` ${v}`).join(', ')}.`);
  console.log('');
}
const notes = env.notes as string[] | undefined;
if (notes && notes.length > 0) console.log(`Notes from the run:\n\n${notes.map((n) => `- ${n}`).join('\n')}\n`);
