import { api, type InvocationView, type Page } from './api.ts';
import { Loading } from './components.tsx';
import { useLoad } from './hooks.ts';
import { BASE, Link } from './router.tsx';

interface Edge {
  from: string;
  to: string;
  calls: number;
  errors: number;
}

/** Function-to-function calls from the latest records: each record with a callerFunction is one edge call. */
export function edgesOf(records: InvocationView[]): Edge[] {
  const edges = new Map<string, Edge>();
  for (const r of records) {
    if (!r.callerFunction) continue;
    const key = `${r.callerFunction}→${r.functionName}`;
    const e = edges.get(key) ?? { from: r.callerFunction, to: r.functionName, calls: 0, errors: 0 };
    e.calls++;
    if (r.outcome === 'error') e.errors++;
    edges.set(key, e);
  }
  return [...edges.values()].sort((a, b) => b.calls - a.calls);
}

const SIZE = 420;

/** The nodes on a circle, edges as arrows; the table below says the same for keyboard and screen readers. */
function Graph({ edges }: { edges: Edge[] }) {
  const names = [...new Set(edges.flatMap((e) => [e.from, e.to]))].sort();
  const r = SIZE / 2 - 60;
  const pos = new Map(names.map((n, i) => {
    const a = (2 * Math.PI * i) / names.length - Math.PI / 2;
    return [n, { x: SIZE / 2 + r * Math.cos(a), y: SIZE / 2 + r * Math.sin(a) }];
  }));
  return (
    <svg width={SIZE} height={SIZE} viewBox={`0 0 ${SIZE} ${SIZE}`} role="img" aria-label={`Service map: ${edges.map((e) => `${e.from} calls ${e.to}`).join('; ')}`}>
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse">
          <path d="M 0 0 L 10 5 L 0 10 z" fill="currentColor" />
        </marker>
      </defs>
      {edges.map((e) => {
        const a = pos.get(e.from)!;
        const b = pos.get(e.to)!;
        const len = Math.hypot(b.x - a.x, b.y - a.y) || 1;
        const ux = (b.x - a.x) / len;
        const uy = (b.y - a.y) / len;
        return (
          <g key={`${e.from}→${e.to}`} className={e.errors ? 'edge bad' : 'edge'}>
            <line x1={a.x + ux * 28} y1={a.y + uy * 28} x2={b.x - ux * 28} y2={b.y - uy * 28} stroke="currentColor" strokeWidth={1 + Math.min(4, Math.log2(e.calls + 1))} markerEnd="url(#arrow)" />
            <text x={(a.x + b.x) / 2} y={(a.y + b.y) / 2 - 4} textAnchor="middle" className="edge-label">{e.calls}</text>
          </g>
        );
      })}
      {names.map((n) => {
        const p = pos.get(n)!;
        return (
          <g key={n} className="node">
            <circle cx={p.x} cy={p.y} r={26} />
            <text x={p.x} y={p.y + 44} textAnchor="middle">{n}</text>
          </g>
        );
      })}
    </svg>
  );
}

export function ServiceMap() {
  const records = useLoad((signal) => api<Page<InvocationView>>('GET', '/v1/invocations?limit=1000', { signal }), [], 10_000);
  return (
    <>
      <h1>Service map</h1>
      <p className="muted">Function-to-function calls in the latest 1000 invocation records.</p>
      <Loading state={records} what="Invocation records">
        {(data) => {
          const edges = edgesOf(data.items);
          if (edges.length === 0) return <p className="muted">No function has called another in these records (calls through service bindings appear here).</p>;
          return (
            <>
              <Graph edges={edges} />
              <table aria-label="Calls between functions">
                <thead><tr><th scope="col">Caller</th><th scope="col">Callee</th><th scope="col">Calls</th><th scope="col">Errors</th></tr></thead>
                <tbody>
                  {edges.map((e) => (
                    <tr key={`${e.from}→${e.to}`}>
                      <td><Link href={`${BASE}/functions/${encodeURIComponent(e.from)}`}>{e.from}</Link></td>
                      <td><Link href={`${BASE}/functions/${encodeURIComponent(e.to)}`}>{e.to}</Link></td>
                      <td>{e.calls}</td>
                      <td>{e.errors}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          );
        }}
      </Loading>
    </>
  );
}
