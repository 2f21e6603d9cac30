// cron_jitter: how punctually cron triggers fire, and whether a restart loses or repeats a fire; on each
// queue store backend (continuum-sqlite, continuum-nats).
//
//   jitter:  a fresh node per round and target; CRON_FUNCTIONS functions, each with an every-second cron
//            (`* * * * * *`); each Workers scheduled() handler logs controller.scheduledTime and its lateness
//            (Date.now() − scheduledTime at handler start). Over a window of --cron-duration whole seconds
//            (starting once every function has fired), each function should fire once per second:
//            missed_fires = scheduled times with no run, double_fires = runs beyond the first.
//   restart: RESTART_FUNCTIONS functions with an every-10-seconds cron for --cron-restart-duration; halfway,
//            right after a fire, SIGTERM to the node and `continuum up` again on the same data dir (and NATS).
//            The node is back long before the next fire, so no fire falls into the downtime by design and
//            every scheduled time of the window must run exactly once (runs counted from the stored logs
//            and the live log stream).
//
// Lateness percentiles come from the samples pooled over the rounds; missed and double fires are summed.
import { join } from 'node:path';
import { median, percentile, round } from '../lib/stats.ts';
import { errorMessage, Samples, type EventTarget, type Metrics, type Options, type ScenarioReport } from '../lib/types.ts';
import { sleep } from '../lib/util.ts';
import type { LogLine } from '../targets/continuum.ts';
import { EventNode } from '../targets/event-node.ts';

export const CRON_FUNCTIONS = 100;
export const RESTART_FUNCTIONS = 5;
const RESTART_EVERY_S = 10;
/** Time after the window for the last fires to run and be logged. */
const GRACE_MS = 3000;
/** Settling time between the last deploy and the window, so every trigger has fired at least once. */
const SETTLE_MS = 2000;
/** The node must be back this long before the next fire, or the fire may fall into the downtime. */
const RESTART_MARGIN_MS = 1000;

const HANDLER = `export default {
  async scheduled(controller) {
    console.log('fire ' + controller.scheduledTime + ' ' + (Date.now() - controller.scheduledTime));
  },
};
`;

/** Runs per function and scheduled time, with the lateness of each run. */
class Fires {
  readonly #runs = new Map<string, Map<number, number[]>>();
  readonly #ids = new Set<string>();

  add(line: LogLine): void {
    const m = /^fire (\d+) (-?\d+)$/.exec(line.message);
    if (!m || this.#ids.has(line.invocationId)) return; // the same run seen live and in the store
    this.#ids.add(line.invocationId);
    let byTime = this.#runs.get(line.functionName);
    if (!byTime) this.#runs.set(line.functionName, (byTime = new Map()));
    const t = Number(m[1]);
    byTime.set(t, [...(byTime.get(t) ?? []), Number(m[2])]);
  }

  has(fn: string, scheduledTime: number): boolean {
    return this.#runs.get(fn)?.has(scheduledTime) ?? false;
  }

  /** Counts over the scheduled times from `start` (inclusive) to `end` (exclusive), every `stepMs`. */
  count(functions: string[], start: number, end: number, stepMs: number): { expected: number; missed: number; double: number; lateness: number[] } {
    const out = { expected: 0, missed: 0, double: 0, lateness: [] as number[] };
    for (const fn of functions) {
      for (let t = start; t < end; t += stepMs) {
        const runs = this.#runs.get(fn)?.get(t) ?? [];
        out.expected++;
        if (runs.length === 0) out.missed++;
        out.double += Math.max(0, runs.length - 1);
        out.lateness.push(...runs);
      }
    }
    return out;
  }
}

const untilTime = (at: number): Promise<void> => sleep(Math.max(0, at - Date.now()));

async function deployCron(node: EventNode, names: string[], schedule: string): Promise<void> {
  for (const name of names) await node.node.deploy(name, HANDLER, { config: { triggers: [{ type: 'cron', schedule }] } });
}

async function jitterRound(target: EventTarget, opts: Options, rnd: number): Promise<{ expected: number; missed: number; double: number; lateness: number[]; serverCpuPct: number }> {
  const node = await EventNode.start(target, join(opts.workDir, `cron_jitter-${target}-${rnd}`), join(opts.workDir, `cron_jitter-${target}-${rnd}.log`));
  const fires = new Fires();
  try {
    const logs = await node.node.followLogs({ q: 'fire ' }, (line) => fires.add(line));
    const names = Array.from({ length: CRON_FUNCTIONS }, (_, i) => `cj-${i}`);
    await deployCron(node, names, '* * * * * *');
    const start = Math.ceil((Date.now() + SETTLE_MS) / 1000) * 1000;
    const end = start + opts.cronDurationS * 1000;
    await untilTime(start);
    const cpu0 = node.cpuUs();
    await untilTime(end);
    const cpuUs = node.cpuUs() - cpu0;
    await sleep(GRACE_MS);
    logs.close();
    return { ...fires.count(names, start, end, 1000), serverCpuPct: (cpuUs / (opts.cronDurationS * 1e6)) * 100 };
  } finally {
    await node.stop();
  }
}

async function restartRun(target: EventTarget, opts: Options): Promise<{ expected: number; missed: number; double: number; downtimeMs: number; durationS: number; note: string | null }> {
  const node = await EventNode.start(target, join(opts.workDir, `cron_restart-${target}`), join(opts.workDir, `cron_restart-${target}.log`));
  const fires = new Fires();
  const step = RESTART_EVERY_S * 1000;
  try {
    const logs = await node.node.followLogs({ q: 'fire ' }, (line) => fires.add(line));
    const names = Array.from({ length: RESTART_FUNCTIONS }, (_, i) => `cr-${i}`);
    await deployCron(node, names, `*/${RESTART_EVERY_S} * * * * *`);
    // At least two fires on each side of the restart.
    const fireCount = Math.max(4, Math.round(opts.cronRestartDurationS / RESTART_EVERY_S));
    const start = Math.ceil((Date.now() + SETTLE_MS) / step) * step;
    const end = start + fireCount * step;
    const killAfter = start + Math.floor(fireCount / 2) * step;
    opts.log(`cron_jitter restart ${target}: fires ${new Date(start).toISOString()} … ${new Date(end - step).toISOString()}, SIGTERM after ${new Date(killAfter).toISOString()}`);
    await untilTime(killAfter);
    // Right after the fire: as soon as every function has run it (or a few seconds on, whatever happened).
    while (!names.every((n) => fires.has(n, killAfter)) && Date.now() < killAfter + 5000) await sleep(5);
    logs.close();
    const killedAt = Date.now();
    await node.restart();
    const downtimeMs = Date.now() - killedAt;
    const note = Date.now() > killAfter + step - RESTART_MARGIN_MS
      ? `the restart took ${downtimeMs} ms; the fire at ${new Date(killAfter + step).toISOString()} may have fallen into the downtime`
      : null;
    opts.log(`cron_jitter restart ${target}: node back after ${downtimeMs} ms`);
    await untilTime(end + GRACE_MS);
    for (const name of names) for (const line of await node.node.logs({ function: name, q: 'fire ', limit: '1000' })) fires.add(line);
    return { ...fires.count(names, start, end, step), downtimeMs, durationS: (end - start) / 1000, note };
  } finally {
    await node.stop();
  }
}

export async function cronScenario(opts: Options, notes: string[], targets: EventTarget[]): Promise<ScenarioReport> {
  const samples = new Samples();
  const errors = new Map<EventTarget, number>();
  const unavailable = new Set<EventTarget>();
  const fail = (target: EventTarget, what: string, err: unknown): void => {
    opts.log(`cron_jitter ${target} ${what}: ${errorMessage(err)}`);
    notes.push(`cron_jitter/${target}: ${what}: ${errorMessage(err)}`);
    // A target that cannot run here (continuum-nats without NATS support) is a note, not an error.
    if (errorMessage(err).startsWith('not available')) unavailable.add(target);
    else errors.set(target, (errors.get(target) ?? 0) + 1);
  };
  const lateness = new Map<EventTarget, number[]>();
  for (let rnd = 1; rnd <= opts.rounds; rnd++) {
    for (const target of targets) {
      if (unavailable.has(target)) continue;
      try {
        const res = await jitterRound(target, opts, rnd);
        lateness.set(target, [...(lateness.get(target) ?? []), ...res.lateness]);
        samples.add(target, 'missed_fires', res.missed);
        samples.add(target, 'double_fires', res.double);
        samples.add(target, 'expected_fires', res.expected);
        samples.add(target, 'server_cpu_pct', res.serverCpuPct);
        opts.log(`cron_jitter round ${rnd}/${opts.rounds} ${target}: lateness p50 ${percentile(res.lateness, 50)} ms, p99 ${percentile(res.lateness, 99)} ms, max ${res.lateness.reduce((a, b) => Math.max(a, b), -Infinity)} ms; ${res.expected} fires expected, ${res.missed} missed, ${res.double} double; server CPU ${Math.round(res.serverCpuPct)}%`);
      } catch (err) {
        fail(target, `round ${rnd}`, err);
      }
    }
  }
  for (const target of targets) {
    if (unavailable.has(target)) continue;
    try {
      const res = await restartRun(target, opts);
      samples.add(target, 'restart_missed_fires', res.missed);
      samples.add(target, 'restart_double_fires', res.double);
      samples.add(target, 'restart_expected_fires', res.expected);
      samples.add(target, 'restart_downtime_ms', res.downtimeMs);
      samples.add(target, 'restart_duration_s', res.durationS);
      if (res.note) notes.push(`cron_jitter/${target}: ${res.note}`);
      opts.log(`cron_jitter restart ${target}: ${res.expected} fires expected, ${res.missed} missed, ${res.double} double`);
    } catch (err) {
      fail(target, 'restart run', err);
    }
  }
  const report: ScenarioReport = {};
  for (const target of targets) {
    if (unavailable.has(target)) continue;
    const m: Metrics = {};
    const late = lateness.get(target) ?? [];
    if (late.length > 0) {
      m.p50_ms = percentile(late, 50);
      m.p99_ms = percentile(late, 99);
      m.max_ms = late.reduce((a, b) => Math.max(a, b), -Infinity);
    }
    for (const metric of samples.metrics(target)) {
      const list = samples.get(target, metric);
      m[metric] = metric === 'server_cpu_pct' ? round(median(list), 1) : list.reduce((a, b) => a + b, 0);
    }
    m.functions = CRON_FUNCTIONS;
    m.duration_s = opts.cronDurationS;
    m.rounds = samples.get(target, 'expected_fires').length;
    m.restart_functions = RESTART_FUNCTIONS;
    m.errors = errors.get(target) ?? 0;
    report[target] = m;
  }
  return report;
}
