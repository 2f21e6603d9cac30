import type { ReactNode } from 'react';
import { ApiError } from './api.ts';

/** An API error as the operator needs it: the code, the message, and where in the code when the build says. */
export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  if (error instanceof ApiError) {
    const d = error.details;
    const where = d && d.file !== undefined ? `${d.file}${d.line !== undefined ? `:${d.line}` : ''}${d.column !== undefined ? `:${d.column}` : ''}` : null;
    return (
      <div className="error" role="alert">
        <strong className="code">{error.code}</strong> {error.message}
        {where && !error.message.includes(where) ? <div className="where">at {where}</div> : null}
      </div>
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return (
    <div className="error" role="alert">
      <strong className="code">network_error</strong> {message}
    </div>
  );
}

/** What a panel shows when this node does not have the route behind it. */
export function NotAvailable({ what }: { what: string }) {
  return <p className="muted" role="status">{what} is not available on this node.</p>;
}

/** Shows children once loaded, a NotAvailable panel for a missing route, or the error. */
export function Loading<T>({ state, what, children }: { state: { data: T | undefined; error: unknown; loading: boolean }; what: string; children: (data: T) => ReactNode }) {
  if (state.error instanceof ApiError && state.error.notAvailable) return <NotAvailable what={what} />;
  return (
    <>
      <ErrorBox error={state.error} />
      {state.data !== undefined ? children(state.data) : state.loading ? <p className="muted">Loading…</p> : null}
    </>
  );
}

export function ms(value: number | null | undefined): string {
  if (value === null || value === undefined) return '—';
  return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${value < 10 ? value.toFixed(2) : value.toFixed(1)} ms`;
}

export function bytes(value: number): string {
  if (value >= 1 << 20) return `${(value / (1 << 20)).toFixed(1)} MiB`;
  if (value >= 1024) return `${(value / 1024).toFixed(1)} KiB`;
  return `${value} B`;
}

export function ago(iso: string | number): string {
  const s = Math.round((Date.now() - (typeof iso === 'number' ? iso : Date.parse(iso))) / 1000);
  if (s < 60) return `${Math.max(0, s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}
