import { ApiError, api, type InvocationView, type Page } from './api.ts';
import { Loading, ms } from './components.tsx';
import { useLoad } from './hooks.ts';

type Row = Record<string, string | number>;
interface UsageTable {
  rows: Row[];
  source: 'usage' | 'records';
}

/** Per-function totals from the latest records, for a node without /v1/usage. */
function fromRecords(items: InvocationView[]): Row[] {
  const rows = new Map<string, { function: string; invocations: number; errors: number; coldStarts: number; execMs: number; cpuMs: number; peakMemoryMiB: number }>();
  for (const r of items) {
    const row = rows.get(r.functionName) ?? { function: r.functionName, invocations: 0, errors: 0, coldStarts: 0, execMs: 0, cpuMs: 0, peakMemoryMiB: 0 };
    row.invocations++;
    if (r.outcome === 'error') row.errors++;
    if (r.coldStart) row.coldStarts++;
    row.execMs += r.phases.execMs;
    row.cpuMs += r.cpuMs;
    row.peakMemoryMiB = Math.max(row.peakMemoryMiB, r.peakMemoryBytes / (1 << 20));
    rows.set(r.functionName, row);
  }
  return [...rows.values()].map((r) => ({ ...r, execMs: +r.execMs.toFixed(1), cpuMs: +r.cpuMs.toFixed(1), peakMemoryMiB: +r.peakMemoryMiB.toFixed(1) }));
}

async function loadUsage(signal: AbortSignal): Promise<UsageTable> {
  try {
    const usage = await api<{ items?: Row[] } | Row[]>('GET', '/v1/usage', { signal });
    const rows = Array.isArray(usage) ? usage : (usage.items ?? []);
    return { rows, source: 'usage' };
  } catch (err) {
    if (!(err instanceof ApiError && err.notAvailable)) throw err;
    return { rows: fromRecords((await api<Page<InvocationView>>('GET', '/v1/invocations?limit=1000', { signal })).items), source: 'records' };
  }
}

function cell(key: string, value: unknown): string {
  if (typeof value === 'number') return /Ms$/.test(key) ? ms(value) : String(value);
  if (value === null || value === undefined) return '—';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/** Usage per function: the node's meter when it has one, else totals over the latest records. */
export function Usage() {
  const usage = useLoad(loadUsage, [], 10_000);
  return (
    <>
      <h1>Usage</h1>
      <Loading state={usage} what="Usage">
        {(data) => {
          const columns = [...new Set(data.rows.flatMap((r) => Object.keys(r)))];
          return (
            <>
              {data.source === 'records' ? <p className="muted">Totals over the latest 1000 invocation records (this node has no usage meter).</p> : null}
              {data.rows.length === 0 ? <p className="muted">No usage yet.</p> : (
                <table aria-label="Usage per function">
                  <thead><tr>{columns.map((c) => <th key={c} scope="col">{c}</th>)}</tr></thead>
                  <tbody>
                    {data.rows.map((r, i) => <tr key={i}>{columns.map((c) => <td key={c}>{cell(c, r[c])}</td>)}</tr>)}
                  </tbody>
                </table>
              )}
            </>
          );
        }}
      </Loading>
    </>
  );
}
