import { api, type FunctionView, type Page } from './api.ts';
import { ago, Loading } from './components.tsx';
import { useLoad } from './hooks.ts';
import { BASE, Link } from './router.tsx';
import { DeployForm } from './Deploy.tsx';

/** A function's state in a few words: whether it has code, and whether instances are up (warm) now. */
export function stateOf(fn: FunctionView): string {
  if (fn.state) return fn.state;
  if (!fn.activeVersion) return 'no code';
  return fn.instances > 0 ? 'warm' : 'scaled to zero';
}

export function Functions() {
  const list = useLoad((signal) => api<Page<FunctionView>>('GET', '/v1/functions', { signal }), [], 5000);
  return (
    <>
      <h1>Functions</h1>
      <Loading state={list} what="The function list">
        {(data) =>
          data.items.length === 0 ? (
            <p className="muted">No functions yet: deploy one below.</p>
          ) : (
            <table aria-label="Functions">
              <thead>
                <tr><th scope="col">Name</th><th scope="col">State</th><th scope="col">Tier</th><th scope="col">Instances</th><th scope="col">Version</th><th scope="col">Updated</th></tr>
              </thead>
              <tbody>
                {data.items.map((fn) => (
                  <tr key={fn.name}>
                    <td><Link href={`${BASE}/functions/${encodeURIComponent(fn.name)}`}>{fn.name}</Link></td>
                    <td><span className={`state state-${stateOf(fn).replace(/\s/g, '-')}`}>{stateOf(fn)}</span></td>
                    <td>{fn.tier}</td>
                    <td>{fn.instances}</td>
                    <td><code>{fn.activeVersion ?? '—'}</code></td>
                    <td>{ago(fn.updatedAt)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Loading>
      <section aria-labelledby="new-fn">
        <h2 id="new-fn">Deploy a function</h2>
        <DeployForm onDeployed={list.reload} />
      </section>
    </>
  );
}
