import { useState } from 'react';
import { api, type DeadLetterView, type Page, type QueueView } from './api.ts';
import { ago, ErrorBox, Loading, ms } from './components.tsx';
import { useLoad } from './hooks.ts';

function DeadLetters({ queue, onRedriven }: { queue: string; onRedriven: () => void }) {
  const list = useLoad((signal) => api<Page<DeadLetterView>>('GET', `/v1/queues/${encodeURIComponent(queue)}/dead-letters?limit=50`, { signal }), [queue]);
  const [error, setError] = useState<unknown>(null);
  const [note, setNote] = useState<string | null>(null);
  const redrive = async (ids?: string[]) => {
    setError(null);
    setNote(null);
    try {
      const result = await api<{ redriven: number }>('POST', `/v1/queues/${encodeURIComponent(queue)}/redrive`, { body: ids ? { ids } : {} });
      setNote(`${result.redriven} message(s) moved back to ${queue}`);
      list.reload();
      onRedriven();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section aria-labelledby={`dlq-${queue}`} className="detail">
      <h3 id={`dlq-${queue}`}>Dead letters of {queue}</h3>
      <ErrorBox error={error} />
      {note ? <p role="status" className="ok">{note}</p> : null}
      <Loading state={list} what="Dead letters">
        {(data) => data.items.length === 0 ? <p className="muted">No dead letters.</p> : (
          <>
            <button type="button" onClick={() => redrive()}>Redrive all</button>
            <table aria-label={`Dead letters of ${queue}`}>
              <thead><tr><th scope="col">Id</th><th scope="col">Died</th><th scope="col">Attempts</th><th scope="col">Reason</th><th scope="col">Last error</th><th scope="col">Body</th><th scope="col">Action</th></tr></thead>
              <tbody>
                {data.items.map((d) => (
                  <tr key={d.id}>
                    <td><code>{d.id}</code></td>
                    <td>{ago(d.deadAt)}</td>
                    <td>{d.attempts}</td>
                    <td>{d.reason}</td>
                    <td>{d.errors[d.errors.length - 1] ?? '—'}</td>
                    <td><code className="clip">{d.encoding === 'base64' ? '(binary)' : d.body.slice(0, 120)}</code></td>
                    <td><button type="button" onClick={() => redrive([d.id])} aria-label={`Redrive ${d.id}`}>Redrive</button></td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        )}
      </Loading>
    </section>
  );
}

/** Queues with depth, age of the oldest message and dead letters; a queue's DLQ can be redriven here. */
export function Queues() {
  const list = useLoad((signal) => api<Page<QueueView>>('GET', '/v1/queues', { signal }), [], 5000);
  const [open, setOpen] = useState<string | null>(null);
  return (
    <>
      <h1>Queues</h1>
      <Loading state={list} what="Queues">
        {(data) => data.items.length === 0 ? <p className="muted">No queues.</p> : (
          <table aria-label="Queues">
            <thead><tr><th scope="col">Queue</th><th scope="col">Depth</th><th scope="col">Ready</th><th scope="col">Delayed</th><th scope="col">In flight</th><th scope="col">Oldest</th><th scope="col">Dead letters</th><th scope="col">Consumers</th></tr></thead>
            <tbody>
              {data.items.map((q) => (
                <tr key={q.name}>
                  <td>{q.name}</td>
                  <td>{q.stats.depth}</td>
                  <td>{q.stats.ready}</td>
                  <td>{q.stats.delayed}</td>
                  <td>{q.stats.inFlight}</td>
                  <td>{q.stats.depth ? ms(q.stats.oldestAgeMs) : '—'}</td>
                  <td>
                    <button type="button" aria-expanded={open === q.name} onClick={() => setOpen(open === q.name ? null : q.name)} aria-label={`Dead letters of ${q.name}: ${q.stats.deadLetters}`}>
                      {q.stats.deadLetters}
                    </button>
                  </td>
                  <td>{q.consumers.join(', ') || '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Loading>
      {open ? <DeadLetters queue={open} onRedriven={list.reload} /> : null}
    </>
  );
}
