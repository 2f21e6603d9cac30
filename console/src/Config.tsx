import { useState, type FormEvent } from 'react';
import { api, type FunctionView } from './api.ts';
import { ErrorBox } from './components.tsx';

const NUMBERS = [
  ['limits', 'memoryMb', 'Memory (MiB)'],
  ['limits', 'timeoutMs', 'Timeout (ms)'],
  ['limits', 'cpuMs', 'CPU limit (ms)'],
  ['scale', 'concurrency', 'Concurrency per instance'],
  ['scale', 'minInstances', 'Minimum instances'],
  ['scale', 'maxInstances', 'Maximum instances'],
  ['scale', 'idleTimeoutMs', 'Idle timeout (ms)'],
] as const;

const TIERS = ['isolate', 'process', 'container', 'gvisor', 'microvm'];

function envText(env: Record<string, string>): string {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`).join('\n');
}

/**
 * Edits a function's configuration: the common numbers as fields, env as KEY=value lines, and triggers,
 * routes and bindings (grants) as JSON. The server validates; its error (code, field pointer) is shown.
 */
export function ConfigEditor({ fn, onSaved }: { fn: FunctionView; onSaved: () => void }) {
  const c = fn.config;
  const [numbers, setNumbers] = useState<Record<string, string>>(() => Object.fromEntries(NUMBERS.map(([group, key]) => [`${group}.${key}`, String(c[group][key] ?? '')])));
  const [tier, setTier] = useState(c.tier);
  const [env, setEnv] = useState(envText(c.env));
  const [triggers, setTriggers] = useState(JSON.stringify(c.triggers, null, 2));
  const [routes, setRoutes] = useState(JSON.stringify(c.routes, null, 2));
  const [bindings, setBindings] = useState(JSON.stringify(c.bindings, null, 2));
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setSaved(null);
    setBusy(true);
    try {
      const limits: Record<string, number> = {};
      const scale: Record<string, number> = {};
      for (const [group, key, label] of NUMBERS) {
        const raw = numbers[`${group}.${key}`]?.trim() ?? '';
        if (raw === '') continue;
        const n = Number(raw);
        if (!Number.isInteger(n)) throw new Error(`${label} must be a whole number`);
        (group === 'limits' ? limits : scale)[key] = n;
      }
      const envObject: Record<string, string> = {};
      for (const line of env.split('\n')) {
        if (!line.trim()) continue;
        const eq = line.indexOf('=');
        if (eq <= 0) throw new Error(`environment line "${line}" is not KEY=value`);
        envObject[line.slice(0, eq).trim()] = line.slice(eq + 1);
      }
      const parse = (text: string, what: string): unknown => {
        try {
          return JSON.parse(text);
        } catch (err) {
          throw new Error(`${what} is not valid JSON: ${(err as Error).message}`);
        }
      };
      const config = { tier, limits, scale, env: envObject, triggers: parse(triggers, 'Triggers'), routes: parse(routes, 'Routes'), bindings: parse(bindings, 'Bindings') };
      const updated = await api<FunctionView>('PATCH', `/v1/functions/${encodeURIComponent(fn.name)}`, { body: { config } });
      setSaved(`Saved${updated.activeVersion ? `; active version ${updated.activeVersion}` : ''}`);
      onSaved();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit} aria-label="Configuration" className="stack">
      <div className="fields">
        <label htmlFor="cfg-tier">Tier</label>
        <select id="cfg-tier" value={tier} onChange={(e) => setTier(e.target.value)}>
          {TIERS.map((t) => <option key={t} value={t}>{t}</option>)}
        </select>
        {NUMBERS.map(([group, key, label]) => (
          <div key={`${group}.${key}`} className="field">
            <label htmlFor={`cfg-${key}`}>{label}</label>
            <input id={`cfg-${key}`} inputMode="numeric" value={numbers[`${group}.${key}`] ?? ''} onChange={(e) => setNumbers({ ...numbers, [`${group}.${key}`]: e.target.value })} />
          </div>
        ))}
      </div>
      <label htmlFor="cfg-env">Environment (one KEY=value per line)</label>
      <textarea id="cfg-env" className="code" rows={4} spellCheck={false} value={env} onChange={(e) => setEnv(e.target.value)} />
      <label htmlFor="cfg-triggers">Triggers (JSON: queue and cron)</label>
      <textarea id="cfg-triggers" className="code" rows={5} spellCheck={false} value={triggers} onChange={(e) => setTriggers(e.target.value)} />
      <label htmlFor="cfg-routes">Routes (JSON: path, methods, host)</label>
      <textarea id="cfg-routes" className="code" rows={4} spellCheck={false} value={routes} onChange={(e) => setRoutes(e.target.value)} />
      <label htmlFor="cfg-bindings">Bindings and grants (JSON: env name → resource)</label>
      <textarea id="cfg-bindings" className="code" rows={4} spellCheck={false} value={bindings} onChange={(e) => setBindings(e.target.value)} />
      <div><button type="submit" disabled={busy}>{busy ? 'Saving…' : 'Save configuration'}</button></div>
      <ErrorBox error={error} />
      {saved ? <p role="status" className="ok">{saved}</p> : null}
    </form>
  );
}
