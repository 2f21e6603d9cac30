import { useEffect, useRef, useState } from 'react';
import { apiFetch, logLines, toApiError, type LogLine } from './api.ts';
import { ErrorBox } from './components.tsx';

const KEEP = 1000;

/** Live logs of a function: the recent backlog, then every new line while "Follow" is on. */
export function LogsPanel({ name }: { name: string }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [follow, setFollow] = useState(true);
  const [text, setText] = useState('');
  const [applied, setApplied] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [live, setLive] = useState(false);
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const ctl = new AbortController();
    setLines([]);
    setError(null);
    (async () => {
      const q = new URLSearchParams({ function: name, limit: '200' });
      if (follow) q.set('follow', '1');
      if (applied) q.set('q', applied);
      const res = await apiFetch('GET', `/v1/logs?${q}`, { signal: ctl.signal });
      if (!res.ok) throw await toApiError(res);
      setLive(follow);
      let pending: LogLine[] = [];
      let scheduled = false;
      // Lines are batched per animation frame: a chatty function must not re-render per line.
      for await (const line of logLines(res)) {
        pending.push(line);
        if (!scheduled) {
          scheduled = true;
          requestAnimationFrame(() => {
            scheduled = false;
            const batch = pending;
            pending = [];
            setLines((prev) => [...prev, ...batch].slice(-KEEP));
          });
        }
      }
      if (pending.length) setLines((prev) => [...prev, ...pending].slice(-KEEP));
    })()
      .catch((err: unknown) => {
        if (!ctl.signal.aborted) setError(err);
      })
      .finally(() => setLive(false));
    return () => ctl.abort();
  }, [name, follow, applied]);

  useEffect(() => {
    const el = box.current;
    if (el && follow) el.scrollTop = el.scrollHeight;
  }, [lines, follow]);

  return (
    <div className="stack">
      <form className="row" aria-label="Log filter" onSubmit={(e) => { e.preventDefault(); setApplied(text); }}>
        <label htmlFor="logs-text">Search text (case-insensitive)</label>
        <input id="logs-text" value={text} onChange={(e) => setText(e.target.value)} />
        <button type="submit">Filter</button>
        <label><input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> Follow</label>
        <span className="muted" role="status">{live ? 'following' : 'not following'}</span>
      </form>
      <ErrorBox error={error} />
      <div ref={box} className="logs" role="log" aria-label="Log lines" aria-live="polite" tabIndex={0}>
        {lines.length === 0 ? <p className="muted">No log lines yet.</p> : null}
        {lines.map((l, i) => (
          <div key={`${l.invocationId}:${l.seq ?? ''}:${l.ts}:${i}`} className={`logline level-${l.level}`}>
            <time dateTime={new Date(l.ts).toISOString()}>{new Date(l.ts).toLocaleTimeString()}</time>{' '}
            <span className="level">{l.level}</span>{' '}
            <span className="inv" title={l.invocationId}>{l.invocationId.slice(-8)}</span>{' '}
            <span className="msg">{l.message}</span>
          </div>
        ))}
      </div>
    </div>
  );
}
