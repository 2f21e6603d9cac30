import { useEffect, useRef, useState } from 'react';
import { api, type InvocationView, type LogLine, type Page } from './api.ts';
import { ago, bytes, Loading, ms } from './components.tsx';
import { useLoad } from './hooks.ts';
import { BASE, navigate } from './router.tsx';

/** The phases of one invocation in the order they happen; the cold start split when the node records it. */
export function phasesOf(inv: InvocationView): Array<{ key: string; label: string; ms: number }> {
  const p = inv.phases;
  const split = p.sandboxMs !== undefined && p.runtimeInitMs !== undefined && p.moduleLoadMs !== undefined;
  const phases = [
    { key: 'queue', label: 'Queue', ms: p.queueMs },
    ...(split
      ? [
          { key: 'sandbox', label: 'Sandbox', ms: p.sandboxMs! },
          { key: 'runtime', label: 'Runtime init', ms: p.runtimeInitMs! },
          { key: 'module', label: 'Module load', ms: p.moduleLoadMs! },
        ]
      : [{ key: 'init', label: 'Cold start', ms: p.initMs }]),
    { key: 'exec', label: 'Exec', ms: p.execMs },
  ];
  if (p.overheadMs !== undefined) phases.push({ key: 'overhead', label: 'Overhead', ms: p.overheadMs });
  return phases;
}

export function Waterfall({ inv }: { inv: InvocationView }) {
  const phases = phasesOf(inv);
  const total = phases.reduce((s, p) => s + p.ms, 0);
  let offset = 0;
  // The recorded total when the node has one (the phases add up to it); else their sum.
  const shownTotal = inv.phases.totalMs ?? total;
  return (
    <figure className="waterfall" aria-label={`Phase waterfall of invocation ${inv.id}`}>
      <div className="wf-rows">
        {phases.map((p) => {
          const left = total > 0 ? (offset / total) * 100 : 0;
          const width = total > 0 ? (p.ms / total) * 100 : 0;
          offset += p.ms;
          return (
            <div className="wf-row" key={p.key} data-phase={p.key}>
              <span className="wf-label">{p.label}</span>
              <span className="wf-track">
                <span className={`wf-bar phase-${p.key}`} style={{ left: `${left}%`, width: `max(${width}%, ${p.ms > 0 ? 2 : 0}px)` }} />
              </span>
              <span className="wf-ms">{ms(p.ms)}</span>
            </div>
          );
        })}
      </div>
      <figcaption>
        Total {ms(shownTotal)} · {inv.coldStart ? 'cold start' : 'warm'} · {inv.tier} on {inv.node} · CPU {ms(inv.cpuMs)} · peak memory {bytes(inv.peakMemoryBytes)}
      </figcaption>
    </figure>
  );
}

function InvocationDetail({ id }: { id: string }) {
  const inv = useLoad((signal) => api<InvocationView>('GET', `/v1/invocations/${id}`, { signal }), [id]);
  const logs = useLoad((signal) => api<Page<LogLine>>('GET', `/v1/invocations/${id}/logs`, { signal }), [id]);
  // Choosing an invocation takes the keyboard to its details.
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), [id]);
  return (
    <section aria-labelledby="inv-detail" className="detail">
      <h2 id="inv-detail" ref={heading} tabIndex={-1}>Invocation <code>{id}</code></h2>
      <Loading state={inv} what="This invocation">
        {(data) =>
          data.phases ? (
            <>
              <p>
                {data.outcome === 'ok' ? 'ok' : <span className="bad">{data.errorCode}: {data.errorMessage}</span>} · status {data.status ?? '—'} · trigger {data.trigger}
                {data.callerFunction ? ` · called by ${data.callerFunction}` : ''} · {new Date(data.startedAt).toLocaleString()}
              </p>
              <Waterfall inv={data} />
            </>
          ) : (
            <pre>{JSON.stringify(data, null, 2)}</pre>
          )
        }
      </Loading>
      <h3>Logs</h3>
      <Loading state={logs} what="Invocation logs">
        {(data) => (data.items.length === 0 ? <p className="muted">No log lines.</p> : (
          <pre className="logs-static">{data.items.map((l) => `${new Date(l.ts).toLocaleTimeString()} ${l.level} ${l.message}`).join('\n')}</pre>
        ))}
      </Loading>
    </section>
  );
}

/** Invocation records of a function, newest first, a page at a time; choosing one shows its waterfall. */
export function InvocationsPanel({ name, selected }: { name: string; selected: string | undefined }) {
  const [outcome, setOutcome] = useState('');
  const [cold, setCold] = useState('');
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1];
  const page = useLoad(
    (signal) => {
      const q = new URLSearchParams({ function: name, limit: '25' });
      if (outcome) q.set('outcome', outcome);
      if (cold) q.set('coldStart', cold);
      if (cursor) q.set('cursor', cursor);
      return api<Page<InvocationView>>('GET', `/v1/invocations?${q}`, { signal });
    },
    [name, outcome, cold, cursor],
    cursor ? undefined : 3000,
  );
  const select = (id: string) => navigate(`${BASE}/functions/${encodeURIComponent(name)}/invocations?id=${id}`);

  return (
    <div className="stack">
      <div className="row">
        <label htmlFor="inv-outcome">Outcome</label>
        <select id="inv-outcome" value={outcome} onChange={(e) => { setOutcome(e.target.value); setCursors([]); }}>
          <option value="">all</option>
          <option value="ok">ok</option>
          <option value="error">error</option>
        </select>
        <label htmlFor="inv-cold">Start</label>
        <select id="inv-cold" value={cold} onChange={(e) => { setCold(e.target.value); setCursors([]); }}>
          <option value="">cold and warm</option>
          <option value="true">cold only</option>
          <option value="false">warm only</option>
        </select>
        <button type="button" onClick={page.reload}>Refresh</button>
      </div>
      <Loading state={page} what="Invocation records">
        {(data) => (
          <>
            {data.items.length === 0 ? <p className="muted">No invocations recorded yet (records are written within a second or two).</p> : (
              <table aria-label="Invocations">
                <thead>
                  <tr><th scope="col">Started</th><th scope="col">Outcome</th><th scope="col">Status</th><th scope="col">Trigger</th><th scope="col">Cold</th><th scope="col">Phases</th><th scope="col">Waterfall</th></tr>
                </thead>
                <tbody>
                  {data.items.map((inv) => {
                    const total = inv.phases.totalMs ?? phasesOf(inv).reduce((s, p) => s + p.ms, 0);
                    return (
                      <tr key={inv.id} aria-selected={inv.id === selected} className={inv.id === selected ? 'selected' : ''}>
                        <td>{ago(inv.startedAt)}</td>
                        <td className={inv.outcome === 'ok' ? '' : 'bad'}>{inv.outcome === 'ok' ? 'ok' : inv.errorCode}</td>
                        <td>{inv.status ?? '—'}</td>
                        <td>{inv.trigger}</td>
                        <td>{inv.coldStart ? 'cold' : 'warm'}</td>
                        <td>{ms(total)}</td>
                        <td><button type="button" onClick={() => select(inv.id)} aria-label={`Show waterfall of ${inv.id}`}>Show</button></td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            )}
            <div className="row">
              <button type="button" disabled={cursors.length === 0} onClick={() => setCursors(cursors.slice(0, -1))}>Newer</button>
              <button type="button" disabled={!data.nextCursor} onClick={() => data.nextCursor && setCursors([...cursors, data.nextCursor])}>Older</button>
            </div>
          </>
        )}
      </Loading>
      {selected ? <InvocationDetail id={selected} /> : null}
    </div>
  );
}
