import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { ApiError, api, type InvocationView, type Page } from './api.ts';
import { Loading } from './components.tsx';
import { useLoad } from './hooks.ts';
import { phasesOf } from './Invocations.tsx';

/** GET /v1/metrics/series: fixed buckets over a window, oldest first (docs/observability.md). */
export interface SeriesPoint {
  t: number;
  requests: number;
  errors: number;
  coldStarts: number;
  p50Ms: number | null;
  p99Ms: number | null;
  instances: number | null;
}
export interface Series {
  bucketMs: number;
  points: SeriesPoint[];
  /** Where the numbers came from: the node's series, or the console's own count over invocation records. */
  source: 'series' | 'records';
}

const FALLBACK_BUCKET_MS = 10_000;
const FALLBACK_WINDOW_MS = 15 * 60_000;

/** Without the series route (an older node), the same buckets are counted from the latest records. */
function fromRecords(items: InvocationView[], now: number): Series {
  const last = Math.floor(now / FALLBACK_BUCKET_MS) * FALLBACK_BUCKET_MS;
  const n = FALLBACK_WINDOW_MS / FALLBACK_BUCKET_MS;
  const first = last - (n - 1) * FALLBACK_BUCKET_MS;
  const buckets = Array.from({ length: n }, (_, i) => ({ t: first + i * FALLBACK_BUCKET_MS, durations: [] as number[], errors: 0, coldStarts: 0 }));
  for (const inv of items) {
    const i = Math.floor((Date.parse(inv.startedAt) - first) / FALLBACK_BUCKET_MS);
    const b = buckets[i];
    if (!b) continue;
    b.durations.push(inv.phases.totalMs ?? phasesOf(inv).reduce((s, p) => s + p.ms, 0));
    if (inv.outcome === 'error') b.errors++;
    if (inv.coldStart) b.coldStarts++;
  }
  const pct = (sorted: number[], q: number) => (sorted.length ? sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]! : null);
  return {
    bucketMs: FALLBACK_BUCKET_MS,
    source: 'records',
    points: buckets.map((b) => {
      const sorted = b.durations.sort((x, y) => x - y);
      return { t: b.t, requests: sorted.length, errors: b.errors, coldStarts: b.coldStarts, p50Ms: pct(sorted, 0.5), p99Ms: pct(sorted, 0.99), instances: null };
    }),
  };
}

export async function loadSeries(name: string | null, signal: AbortSignal): Promise<Series> {
  try {
    const q = name ? `?function=${encodeURIComponent(name)}` : '';
    const s = await api<Omit<Series, 'source'>>('GET', `/v1/metrics/series${q}`, { signal });
    return { ...s, source: 'series' };
  } catch (err) {
    if (!(err instanceof ApiError && err.notAvailable)) throw err;
    const q = new URLSearchParams({ limit: '1000' });
    if (name) q.set('function', name);
    const page = await api<Page<InvocationView>>('GET', `/v1/invocations?${q}`, { signal });
    return fromRecords(page.items, Date.now());
  }
}

interface ChartProps {
  title: string;
  times: number[];
  series: Array<{ label: string; values: Array<number | null>; stroke: string }>;
  unit?: string;
}

/** One uPlot chart, resized with its container. */
function Chart({ title, times, series, unit }: ChartProps) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = ref.current!;
    const opts: uPlot.Options = {
      title,
      width: Math.max(280, el.clientWidth),
      height: 180,
      scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min ?? 0), Math.max(1, max ?? 1)] } },
      // Latency has gaps (buckets without requests): points keep a lone measurement visible.
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, spanGaps: false, points: { show: !!unit, size: 6, fill: s.stroke }, value: (_u: uPlot, v: number | null) => (v === null ? '—' : `${+v.toFixed(2)}${unit ?? ''}`) }))],
      axes: [{}, { size: 50 }],
      legend: { live: true },
    };
    const plot = new uPlot(opts, [times.map((t) => t / 1000), ...series.map((s) => s.values)] as uPlot.AlignedData, el);
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(280, el.clientWidth), height: 180 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [title, times, series, unit]);
  const totals = series.map((s) => `${s.label}: ${s.values.reduce<number>((sum, v) => sum + (v ?? 0), 0)}`);
  return (
    <figure className="chart" aria-label={title}>
      <div ref={ref} />
      <figcaption className="sr-only">{title} over the window. {unit ? '' : `Totals: ${totals.join(', ')}.`}</figcaption>
    </figure>
  );
}

export function Charts({ data }: { data: Series }) {
  const times = data.points.map((p) => p.t);
  const sum = (k: 'requests' | 'errors' | 'coldStarts') => data.points.reduce((s, p) => s + p[k], 0);
  const col = (k: keyof SeriesPoint) => data.points.map((p) => p[k] as number | null);
  const windowMin = Math.round((data.points.length * data.bucketMs) / 60_000);
  return (
    <>
      <p role="status" data-testid="series-summary">
        Last {windowMin} min in {data.bucketMs / 1000} s buckets: <strong>{sum('requests')} requests</strong>, {sum('errors')} errors, {sum('coldStarts')} cold starts
        {data.source === 'records' ? ' (counted from invocation records: this node has no series endpoint)' : ''}.
      </p>
      <div className="charts">
        <Chart title="Requests" times={times} series={[{ label: 'requests', values: col('requests'), stroke: '#2563eb' }]} />
        <Chart title="Errors" times={times} series={[{ label: 'errors', values: col('errors'), stroke: '#dc2626' }]} />
        <Chart title="Latency" unit=" ms" times={times} series={[{ label: 'p50', values: col('p50Ms'), stroke: '#059669' }, { label: 'p99', values: col('p99Ms'), stroke: '#d97706' }]} />
        <Chart title="Cold starts" times={times} series={[{ label: 'cold starts', values: col('coldStarts'), stroke: '#7c3aed' }]} />
        {data.points.some((p) => p.instances !== null) ? (
          <Chart title="Instances" times={times} series={[{ label: 'instances', values: col('instances'), stroke: '#0891b2' }]} />
        ) : (
          <p className="muted">Instances over time are not available on this node.</p>
        )}
      </div>
    </>
  );
}

export function MetricsPanel({ name }: { name: string | null }) {
  const series = useLoad((signal) => loadSeries(name, signal), [name], 5000);
  return <Loading state={series} what="Metrics">{(data) => <Charts data={data} />}</Loading>;
}
