import { useState, type FormEvent } from 'react';
import { apiFetch, toApiError, type ApiError } from './api.ts';
import { ErrorBox } from './components.tsx';
import { BASE, Link } from './router.tsx';

interface Result {
  status: number;
  headers: Array<[string, string]>;
  body: string;
  ms: number;
  invocationId: string | null;
  error: ApiError | null;
}

/** Invoke with a payload through the API and show what came back: status, headers, body. */
export function InvokePanel({ name }: { name: string }) {
  const [payload, setPayload] = useState('{"hello":"console"}');
  const [contentType, setContentType] = useState('application/json');
  const [async, setAsync] = useState(false);
  const [result, setResult] = useState<Result | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setResult(null);
    const started = performance.now();
    try {
      const res = await apiFetch('POST', `/v1/functions/${encodeURIComponent(name)}/invoke${async ? '?mode=async' : ''}`, {
        raw: payload,
        headers: { 'content-type': contentType },
      });
      const headers = [...res.headers.entries()];
      // An error answered by the platform (timeout, crash, overload) has an API error body: show its code.
      const error = res.ok ? null : await toApiError(res.clone());
      const body = await res.text();
      setResult({ status: res.status, headers, body, ms: performance.now() - started, invocationId: res.headers.get('x-continuum-invocation-id'), error: error && !error.code.startsWith('http_') ? error : null });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="stack">
      <form onSubmit={submit} aria-label="Invoke" className="stack">
        <label htmlFor="invoke-payload">Payload</label>
        <textarea id="invoke-payload" className="code" rows={6} spellCheck={false} value={payload} onChange={(e) => setPayload(e.target.value)} />
        <label htmlFor="invoke-type">Content type</label>
        <input id="invoke-type" value={contentType} onChange={(e) => setContentType(e.target.value)} />
        <label><input type="checkbox" checked={async} onChange={(e) => setAsync(e.target.checked)} /> Asynchronous (202, runs later)</label>
        <div><button type="submit" disabled={busy}>{busy ? 'Invoking…' : 'Invoke'}</button></div>
      </form>
      <ErrorBox error={error} />
      {result ? (
        <section aria-labelledby="invoke-result" className="result">
          <h2 id="invoke-result">Response</h2>
          <p>
            Status <strong data-testid="invoke-status">{result.status}</strong> in {result.ms.toFixed(0)} ms
            {result.invocationId ? (
              <> · invocation <Link href={`${BASE}/functions/${encodeURIComponent(name)}/invocations?id=${result.invocationId}`}><code>{result.invocationId}</code></Link></>
            ) : null}
          </p>
          {result.error ? <ErrorBox error={result.error} /> : null}
          <h3>Headers</h3>
          <table aria-label="Response headers" className="compact">
            <tbody>{result.headers.map(([k, v]) => <tr key={k}><th scope="row">{k}</th><td>{v}</td></tr>)}</tbody>
          </table>
          <h3>Body</h3>
          <pre aria-label="Response body" data-testid="invoke-body">{result.body}</pre>
        </section>
      ) : null}
    </div>
  );
}
