/**
 * Prometheus metrics of one node (GET /metrics, text format 0.0.4), with prom-client. Counters and
 * histograms are fed from invocation records as the sink receives them — never from the request path —
 * and gauges (instances, the activator's buffer, queues) are read from their owners at scrape time.
 * Every series is described in docs/observability.md.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { InvocationRecord, Tier } from '../core/types.ts';
import type { QueueStats } from '../store/contract.ts';

/** OpenTelemetry FaaS semantic conventions: ExplicitBucketBoundaries of faas.invoke_duration and faas.init_duration (s). */
export const FAAS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

/** Tenants do not exist yet; usage series carry this label so that per-tenant usage is a value, not a schema change. */
export const DEFAULT_TENANT = 'default';

export type InstanceState = 'starting' | 'idle' | 'busy' | 'draining';

/** Instances of one function on one tier, by state, and the requests waiting for one of them. */
export interface PoolStats {
  functionName: string;
  tier: Tier;
  instances: Record<InstanceState, number>;
  /** Requests buffered by the activator: waiting for capacity (a free slot or an instance being started). */
  waiting: number;
}

export interface MetricsSources {
  pools(): PoolStats[];
  queues(): Promise<Array<{ name: string; stats: QueueStats }>>;
  /** Records and log lines the sink dropped because the store fell behind (monotonic). */
  dropped(): number;
}

export class Metrics {
  readonly registry = new Registry();
  readonly #invocations: Counter<'function' | 'tier' | 'trigger' | 'outcome'>;
  readonly #errors: Counter<'function' | 'code'>;
  readonly #duration: Histogram<'function' | 'tier' | 'trigger'>;
  readonly #coldStarts: Counter<'function' | 'tier'>;
  readonly #coldStartDuration: Histogram<'function' | 'tier'>;
  readonly #cpu: Counter<'tenant' | 'function'>;
  readonly #memory: Counter<'tenant' | 'function'>;

  constructor(sources: MetricsSources) {
    // prom-client's default process metrics are left out: some of its gauges end in _total, which
    // promtool's lint rejects.
    const registers = [this.registry];
    this.#invocations = new Counter({
      name: 'continuum_invocations_total',
      help: 'Finished invocations by function, tier, trigger and outcome (ok or error).',
      labelNames: ['function', 'tier', 'trigger', 'outcome'],
      registers,
    });
    this.#errors = new Counter({
      name: 'continuum_invocation_errors_total',
      help: 'Failed invocations by function and error code.',
      labelNames: ['function', 'code'],
      registers,
    });
    this.#duration = new Histogram({
      name: 'continuum_invocation_duration_seconds',
      help: "Execution time of the function's logic (record phase execMs), OpenTelemetry faas.invoke_duration buckets.",
      labelNames: ['function', 'tier', 'trigger'],
      buckets: FAAS_BUCKETS,
      registers,
    });
    this.#coldStarts = new Counter({
      name: 'continuum_cold_starts_total',
      help: 'Invocations served by a freshly started instance.',
      labelNames: ['function', 'tier'],
      registers,
    });
    this.#coldStartDuration = new Histogram({
      name: 'continuum_cold_start_duration_seconds',
      help: 'Cold start time (sandbox + runtime init + module load), OpenTelemetry faas.init_duration buckets.',
      labelNames: ['function', 'tier'],
      buckets: FAAS_BUCKETS,
      registers,
    });
    this.#cpu = new Counter({
      name: 'continuum_cpu_seconds_total',
      help: 'CPU time used by invocations.',
      labelNames: ['tenant', 'function'],
      registers,
    });
    this.#memory = new Counter({
      name: 'continuum_memory_byte_seconds_total',
      help: 'Peak memory of each invocation times its execution time, summed.',
      labelNames: ['tenant', 'function'],
      registers,
    });
    new Gauge({
      name: 'continuum_instances',
      help: 'Instances by function, tier and state (starting, idle, busy, draining).',
      labelNames: ['function', 'tier', 'state'],
      registers,
      collect() {
        this.reset();
        for (const p of sources.pools()) {
          for (const [state, n] of Object.entries(p.instances)) this.set({ function: p.functionName, tier: p.tier, state }, n);
        }
      },
    });
    new Gauge({
      name: 'continuum_activator_buffered_requests',
      help: 'Requests waiting for capacity (a free instance slot or an instance being started).',
      labelNames: ['function', 'tier'],
      registers,
      collect() {
        this.reset();
        for (const p of sources.pools()) this.set({ function: p.functionName, tier: p.tier }, p.waiting);
      },
    });
    new Counter({
      name: 'continuum_records_dropped_total',
      help: 'Invocation records and log lines dropped unwritten because the record store fell behind.',
      registers,
      collect() {
        this.reset();
        this.inc(sources.dropped());
      },
    });
    // The three queue gauges share one read of the queue store per scrape.
    let queueRead: Promise<Array<{ name: string; stats: QueueStats }>> | null = null;
    const queues = () => {
      queueRead ??= sources.queues().finally(() => setImmediate(() => (queueRead = null)));
      return queueRead;
    };
    const queueGauge = (name: string, help: string, value: (s: QueueStats) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['queue'],
        registers,
        async collect() {
          const list = await queues();
          this.reset();
          for (const q of list) this.set({ queue: q.name }, value(q.stats));
        },
      });
    queueGauge('continuum_queue_depth', 'Messages not yet finished (ready + delayed + in flight), per queue (async invocations: _async-<function>).', (s) => s.depth);
    queueGauge('continuum_queue_oldest_age_seconds', 'Age of the oldest unfinished message, from its first enqueue (0 when empty).', (s) => s.oldestAgeMs / 1000);
    queueGauge('continuum_queue_dead_letters', 'Messages in the dead-letter store of the queue.', (s) => s.deadLetters);
  }

  /**
   * Count a batch of finished invocations (the record sink's flush). Records are summed per label set
   * first: prom-client hashes the labels on every call, which made this the largest per-request cost of
   * the node's telemetry; histograms still see every value.
   */
  observe(records: readonly InvocationRecord[]): void {
    const groups = new Map<string, { r: InvocationRecord; n: number; cpuS: number; byteS: number; errors: Map<string, number> | null; cold: number[] | null; exec: number[] }>();
    for (const r of records) {
      const key = `${r.functionName}\0${r.tier}\0${r.trigger}\0${r.outcome}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { r, n: 0, cpuS: 0, byteS: 0, errors: null, cold: null, exec: [] }));
      g.n++;
      g.exec.push(r.phases.execMs / 1000);
      if (r.errorCode) (g.errors ??= new Map()).set(r.errorCode, (g.errors.get(r.errorCode) ?? 0) + 1);
      if (r.coldStart) (g.cold ??= []).push(r.phases.initMs / 1000);
      if (r.cpuMs > 0) g.cpuS += r.cpuMs / 1000;
      g.byteS += (r.peakMemoryBytes * r.phases.execMs) / 1000;
    }
    for (const { r, n, cpuS, byteS, errors, cold, exec } of groups.values()) {
      const fn = r.functionName;
      this.#invocations.inc({ function: fn, tier: r.tier, trigger: r.trigger, outcome: r.outcome }, n);
      if (errors) for (const [code, count] of errors) this.#errors.inc({ function: fn, code }, count);
      const durationLabels = { function: fn, tier: r.tier, trigger: r.trigger };
      for (const v of exec) this.#duration.observe(durationLabels, v);
      if (cold) {
        const coldLabels = { function: fn, tier: r.tier };
        this.#coldStarts.inc(coldLabels, cold.length);
        for (const v of cold) this.#coldStartDuration.observe(coldLabels, v);
      }
      if (cpuS > 0) this.#cpu.inc({ tenant: DEFAULT_TENANT, function: fn }, cpuS);
      if (byteS > 0) this.#memory.inc({ tenant: DEFAULT_TENANT, function: fn }, byteS);
    }
  }

  /** The exposition text and its content type (text/plain; version=0.0.4). */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
