import { useRef, type KeyboardEvent } from 'react';
import { api, type FunctionView, type Page, type VersionView } from './api.ts';
import { ago, bytes, Loading } from './components.tsx';
import { useLoad } from './hooks.ts';
import { BASE, navigate } from './router.tsx';
import { stateOf } from './Functions.tsx';
import { DeployForm } from './Deploy.tsx';
import { ConfigEditor } from './Config.tsx';
import { InvokePanel } from './Invoke.tsx';
import { LogsPanel } from './Logs.tsx';
import { InvocationsPanel } from './Invocations.tsx';
import { MetricsPanel } from './Metrics.tsx';

const TABS = [
  ['overview', 'Overview'],
  ['deploy', 'Deploy'],
  ['config', 'Config'],
  ['invoke', 'Invoke'],
  ['logs', 'Logs'],
  ['invocations', 'Invocations'],
  ['metrics', 'Metrics'],
] as const;
type Tab = (typeof TABS)[number][0];

export function FunctionDetail({ name, tab: requested, invocation }: { name: string; tab: string | undefined; invocation: string | undefined }) {
  const tab: Tab = TABS.some(([id]) => id === requested) ? (requested as Tab) : 'overview';
  const fn = useLoad((signal) => api<FunctionView>('GET', `/v1/functions/${encodeURIComponent(name)}`, { signal }), [name], 5000);
  const tabRefs = useRef<Array<HTMLButtonElement | null>>([]);
  const go = (id: Tab) => navigate(`${BASE}/functions/${encodeURIComponent(name)}${id === 'overview' ? '' : `/${id}`}`);

  // Arrow keys move between tabs (WAI-ARIA tabs pattern); Tab moves into the panel.
  const onKey = (e: KeyboardEvent, index: number) => {
    const delta = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
    if (!delta) return;
    e.preventDefault();
    const next = (index + delta + TABS.length) % TABS.length;
    tabRefs.current[next]?.focus();
    go(TABS[next]![0]);
  };

  return (
    <>
      <h1>
        {name}{' '}
        {fn.data ? <span className={`state state-${stateOf(fn.data).replace(/\s/g, '-')}`}>{stateOf(fn.data)}</span> : null}
      </h1>
      <div role="tablist" aria-label="Function sections" className="tabs">
        {TABS.map(([id, label], i) => (
          <button
            key={id}
            id={`tab-${id}`}
            ref={(el) => { tabRefs.current[i] = el; }}
            role="tab"
            aria-selected={tab === id}
            aria-controls={`panel-${id}`}
            tabIndex={tab === id ? 0 : -1}
            onClick={() => go(id)}
            onKeyDown={(e) => onKey(e, i)}
          >
            {label}
          </button>
        ))}
      </div>
      <section role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`} className="panel">
        {tab === 'overview' ? (
          <Loading state={fn} what="This function">{(data) => <Overview fn={data} />}</Loading>
        ) : tab === 'deploy' ? (
          <DeployForm name={name} onDeployed={fn.reload} />
        ) : tab === 'config' ? (
          <Loading state={fn} what="This function">{(data) => <ConfigEditor fn={data} onSaved={fn.reload} />}</Loading>
        ) : tab === 'invoke' ? (
          <InvokePanel name={name} />
        ) : tab === 'logs' ? (
          <LogsPanel name={name} />
        ) : tab === 'invocations' ? (
          <InvocationsPanel name={name} selected={invocation} />
        ) : (
          <MetricsPanel name={name} />
        )}
      </section>
    </>
  );
}

function Overview({ fn }: { fn: FunctionView }) {
  const versions = useLoad((signal) => api<Page<VersionView>>('GET', `/v1/functions/${encodeURIComponent(fn.name)}/versions`, { signal }), [fn.name, fn.activeVersion]);
  const c = fn.config;
  return (
    <div className="grid">
      <section aria-labelledby="ov-summary">
        <h2 id="ov-summary">Summary</h2>
        <dl>
          <dt>State</dt><dd>{stateOf(fn)}</dd>
          <dt>Tier</dt><dd>{fn.tier}</dd>
          <dt>Instances</dt><dd>{fn.instances}</dd>
          <dt>Active version</dt><dd><code>{fn.activeVersion ?? '—'}</code></dd>
          <dt>Handler</dt><dd>{c.handler.format}{c.handler.export ? ` (export ${c.handler.export})` : ''}</dd>
          <dt>Memory</dt><dd>{c.limits.memoryMb} MiB</dd>
          <dt>Timeout</dt><dd>{c.limits.timeoutMs} ms</dd>
          <dt>Concurrency</dt><dd>{c.scale.concurrency} per instance, up to {c.scale.maxInstances} instances</dd>
        </dl>
      </section>
      <section aria-labelledby="ov-triggers">
        <h2 id="ov-triggers">Triggers</h2>
        <ul>
          <li>HTTP: <a href={`/fn/${fn.name}/`}>/fn/{fn.name}/</a></li>
          {c.routes.map((r, i) => (
            <li key={`r${i}`}>Route {r.host ? `${r.host}` : ''}{r.path}{r.methods ? ` (${r.methods.join(', ')})` : ''}</li>
          ))}
          {c.triggers.map((t, i) => (
            <li key={`t${i}`}>{t.type === 'queue' ? `Queue ${String(t.queue)}` : t.type === 'cron' ? `Cron ${String(t.schedule)} ${String(t.timezone ?? '')}` : JSON.stringify(t)}</li>
          ))}
        </ul>
        <h2>Bindings and grants</h2>
        {Object.keys(c.bindings).length === 0 ? <p className="muted">None.</p> : (
          <ul>{Object.entries(c.bindings).map(([k, v]) => <li key={k}><code>env.{k}</code> → {Object.entries(v).map(([kind, target]) => `${kind} ${String(target)}`).join(', ')}</li>)}</ul>
        )}
        <h2>Environment</h2>
        {Object.keys(c.env).length === 0 ? <p className="muted">None.</p> : (
          <ul>{Object.keys(c.env).sort().map((k) => <li key={k}><code>{k}</code></li>)}</ul>
        )}
      </section>
      <section aria-labelledby="ov-versions" className="wide">
        <h2 id="ov-versions">Versions</h2>
        <Loading state={versions} what="Versions">
          {(data) => (
            <table aria-label="Versions">
              <thead><tr><th scope="col">Version</th><th scope="col">Format</th><th scope="col">Bundle</th><th scope="col">Dependencies</th><th scope="col">Created</th></tr></thead>
              <tbody>
                {data.items.map((v) => (
                  <tr key={v.id}>
                    <td><code>{v.id}</code>{v.id === fn.activeVersion ? ' (active)' : ''}</td>
                    <td>{v.format}</td>
                    <td>{bytes(v.bundleBytes)}</td>
                    <td>{v.dependencies.map((d) => `${d.name}@${d.version}`).join(', ') || '—'}</td>
                    <td>{ago(v.createdAt)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Loading>
      </section>
    </div>
  );
}
