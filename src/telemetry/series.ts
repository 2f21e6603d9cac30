/**
 * A bounded in-memory time series per function for the console's charts (GET /v1/metrics/series): fixed
 * buckets (10 s by default) over a fixed window (an hour), fed from invocation records by the sink.
 * Latency percentiles come from a log-scale histogram per bucket (each bin ~10% wide), so p50/p99 are
 * approximate to that width; merged across functions the same way. Memory is bounded by
 * functions × buckets × bins, and only buckets that saw traffic hold a histogram.
 */
import { NODE_DEFAULTS } from '../core/defaults.ts';
import type { InvocationRecord } from '../core/types.ts';

/** Latency bins: bin i holds durations in (MIN·R^(i-1), MIN·R^i] ms; bin 0 everything ≤ MIN. */
const MIN_MS = 0.05;
const RATIO = 1.1;
const BINS = Math.ceil(Math.log(3_600_000 / MIN_MS) / Math.log(RATIO)) + 1;

interface Bucket {
  start: number;
  requests: number;
  errors: number;
  coldStarts: number;
  /** Highest instance count sampled during the bucket. */
  instances: number;
  latency: Uint32Array | null;
}

export interface SeriesPoint {
  /** Bucket start, epoch ms. */
  t: number;
  requests: number;
  errors: number;
  coldStarts: number;
  /** Record totalMs percentiles of the bucket's requests; null when it had none. */
  p50Ms: number | null;
  p99Ms: number | null;
  instances: number;
}

export interface SeriesView {
  function: string | null;
  bucketMs: number;
  points: SeriesPoint[];
}

export interface SeriesOptions {
  bucketMs?: number;
  buckets?: number;
  maxFunctions?: number;
  now?: () => number;
}

export class TimeSeries {
  readonly bucketMs: number;
  readonly #size: number;
  readonly #maxFunctions: number;
  readonly #now: () => number;
  /** Function → ring of buckets indexed by (start / bucketMs) % size. Map order = least recently active first. */
  readonly #rings = new Map<string, Array<Bucket | undefined>>();
  /** The function touched last, already at the end of #rings. */
  #latest: string | null = null;

  constructor(opts: SeriesOptions = {}) {
    this.bucketMs = opts.bucketMs ?? NODE_DEFAULTS.series.bucketMs;
    this.#size = opts.buckets ?? NODE_DEFAULTS.series.buckets;
    this.#maxFunctions = opts.maxFunctions ?? NODE_DEFAULTS.series.maxFunctions;
    this.#now = opts.now ?? Date.now;
  }

  /** Count records in the buckets of their start times (records arrive in batches, up to a flush late). */
  observe(records: readonly InvocationRecord[]): void {
    const oldest = this.#now() - this.bucketMs * (this.#size - 1);
    for (const r of records) {
      const at = Date.parse(r.startedAt);
      if (!(at > oldest)) continue;
      const b = this.#bucket(r.functionName, at);
      b.requests++;
      if (r.outcome === 'error') b.errors++;
      if (r.coldStart) b.coldStarts++;
      b.latency ??= new Uint32Array(BINS);
      b.latency[bin(r.phases.totalMs)]!++;
    }
  }

  /** Record the instance counts seen now (the node samples this on a timer, off the request path). */
  sampleInstances(counts: ReadonlyMap<string, number>): void {
    const now = this.#now();
    for (const [fn, n] of counts) {
      if (n === 0 && !this.#rings.has(fn)) continue;
      const b = this.#bucket(fn, now);
      b.instances = Math.max(b.instances, n);
    }
  }

  /** Dense points over the whole window, oldest first; `functionName` null sums every function. */
  view(functionName: string | null): SeriesView {
    const now = this.#now();
    const last = Math.floor(now / this.bucketMs) * this.bucketMs;
    const rings = functionName === null ? [...this.#rings.values()] : [this.#rings.get(functionName)].filter((r) => r !== undefined);
    const points: SeriesPoint[] = [];
    for (let i = this.#size - 1; i >= 0; i--) {
      const t = last - i * this.bucketMs;
      const p: SeriesPoint = { t, requests: 0, errors: 0, coldStarts: 0, p50Ms: null, p99Ms: null, instances: 0 };
      let merged: Uint32Array | null = null;
      for (const ring of rings) {
        const b = ring[this.#slot(t)];
        if (!b || b.start !== t) continue;
        p.requests += b.requests;
        p.errors += b.errors;
        p.coldStarts += b.coldStarts;
        p.instances += b.instances;
        if (b.latency) {
          if (!merged) merged = Uint32Array.from(b.latency);
          else for (let k = 0; k < BINS; k++) merged[k]! += b.latency[k]!;
        }
      }
      if (merged && p.requests > 0) {
        p.p50Ms = quantile(merged, p.requests, 0.5);
        p.p99Ms = quantile(merged, p.requests, 0.99);
      }
      points.push(p);
    }
    return { function: functionName, bucketMs: this.bucketMs, points };
  }

  /** Forget a function (deleted). */
  drop(functionName: string): void {
    this.#rings.delete(functionName);
    if (this.#latest === functionName) this.#latest = null;
  }

  #slot(start: number): number {
    return Math.floor(start / this.bucketMs) % this.#size;
  }

  #bucket(fn: string, now: number): Bucket {
    let ring = this.#rings.get(fn);
    if (!ring) {
      ring = new Array<Bucket | undefined>(this.#size);
      if (this.#rings.size >= this.#maxFunctions) this.#rings.delete(this.#rings.keys().next().value!);
      this.#rings.set(fn, ring);
    } else if (this.#latest !== fn) {
      // Re-insert: the map stays ordered from least to most recently active (a no-op for the latest one).
      this.#rings.delete(fn);
      this.#rings.set(fn, ring);
    }
    this.#latest = fn;
    const start = Math.floor(now / this.bucketMs) * this.bucketMs;
    const i = this.#slot(start);
    let b = ring[i];
    if (!b || b.start !== start) {
      b = { start, requests: 0, errors: 0, coldStarts: 0, instances: 0, latency: null };
      ring[i] = b;
    }
    return b;
  }
}

function bin(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  return Math.min(BINS - 1, Math.ceil(Math.log(ms / MIN_MS) / Math.log(RATIO)));
}

/** The upper bound of the bin holding the q-quantile observation (an over-estimate by at most one bin width). */
function quantile(bins: Uint32Array, count: number, q: number): number {
  const rank = Math.max(1, Math.ceil(q * count));
  let seen = 0;
  for (let i = 0; i < bins.length; i++) {
    seen += bins[i]!;
    if (seen >= rank) return Math.round(MIN_MS * RATIO ** i * 1000) / 1000;
  }
  return Math.round(MIN_MS * RATIO ** (bins.length - 1) * 1000) / 1000;
}
