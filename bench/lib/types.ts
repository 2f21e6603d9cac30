// Shapes shared by the runner and the scenarios.
import type { Generator } from './load.ts';

/** Targets of the HTTP scenarios (warm, cold, density). */
export type HttpTarget = 'continuum' | 'workerd' | 'node';
/** Targets of the event scenarios: one Continuum node per queue store backend. */
export type EventTarget = 'continuum-sqlite' | 'continuum-nats';
/** Targets of the tier scenarios: Continuum per tier, and the bare tools the tiers stand on (node: a `node -e` start). */
export type TierTarget = 'continuum-isolate' | 'continuum-process' | 'continuum-container' | 'continuum-gvisor' | 'node' | 'runc' | 'runsc';
export type TargetName = HttpTarget | EventTarget | TierTarget;
export const HTTP_TARGETS: readonly HttpTarget[] = ['continuum', 'workerd', 'node'];
export const EVENT_TARGETS: readonly EventTarget[] = ['continuum-sqlite', 'continuum-nats'];
export const TIER_TARGETS: readonly TierTarget[] = ['continuum-isolate', 'continuum-process', 'continuum-container', 'continuum-gvisor', 'node', 'runc', 'runsc'];
export const ALL_TARGETS: readonly TargetName[] = [...new Set<TargetName>([...HTTP_TARGETS, ...EVENT_TARGETS, ...TIER_TARGETS])];

/** metric name (lower snake case with unit) → value */
export type Metrics = Record<string, number>;
/** target (or "ratios") → metrics */
export type ScenarioReport = Record<string, Metrics>;

export interface Options {
  rounds: number;
  durationS: number;
  warmupS: number;
  connections: number;
  generator: Generator;
  coldSamples: number;
  deploySamples: number;
  densityN: number;
  densityNodeN: number;
  /** Messages per queue_throughput run (one backend, message size and batch size). */
  queueMessages: number;
  /** Only these queue_throughput runs (`b<batch>_<size>`, e.g. b10_1kb), without the latency runs; all when absent. */
  queueRuns?: string[];
  /** Messages of each paced latency run of queue_throughput. */
  latencyMessages: number;
  /** Cold starts per target per round in tier_cold_start. */
  tierSamples: number;
  cronDurationS: number;
  cronRestartDurationS: number;
  workDir: string;
  targets: TargetName[];
  log: (msg: string) => void;
}

/** Collects one sample list per metric and per target over the rounds. */
export class Samples {
  private readonly data = new Map<string, Map<string, number[]>>();

  add(target: string, metric: string, value: number): void {
    if (!Number.isFinite(value)) return;
    let t = this.data.get(target);
    if (!t) this.data.set(target, (t = new Map()));
    let list = t.get(metric);
    if (!list) t.set(metric, (list = []));
    list.push(value);
  }

  get(target: string, metric: string): number[] {
    return this.data.get(target)?.get(metric) ?? [];
  }

  targets(): string[] {
    return [...this.data.keys()];
  }

  metrics(target: string): string[] {
    return [...(this.data.get(target)?.keys() ?? [])];
  }
}

/** Adds `a_vs_b_<metric>` = a/b for every listed metric both targets have. */
export function addRatios(report: ScenarioReport, pairs: [TargetName, TargetName][], metrics: string[]): void {
  const ratios: Metrics = {};
  for (const [a, b] of pairs) {
    for (const m of metrics) {
      const va = report[a]?.[m];
      const vb = report[b]?.[m];
      if (va !== undefined && vb !== undefined && vb !== 0 && Number.isFinite(va) && Number.isFinite(vb)) {
        ratios[`${a}_vs_${b}_${m}`] = Math.round((va / vb) * 1000) / 1000;
      }
    }
  }
  if (Object.keys(ratios).length > 0) report.ratios = ratios;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
