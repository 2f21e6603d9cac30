import { useState, type FormEvent } from 'react';
import { api, type FunctionView, type VersionView } from './api.ts';
import { ErrorBox } from './components.tsx';
import { BASE, navigate } from './router.tsx';

const SAMPLE = `export default {
  async fetch(request) {
    console.log('hello from', new URL(request.url).pathname);
    return Response.json({ hello: 'world' });
  },
};
`;

const TYPES: Record<string, string> = {
  js: 'application/javascript',
  mjs: 'application/javascript',
  cjs: 'application/javascript',
  ts: 'application/typescript',
  zip: 'application/zip',
  tgz: 'application/gzip',
  gz: 'application/gzip',
  tar: 'application/x-tar',
};

/** Deploy code from the browser: a file (.js/.ts/.zip/.tgz) or code pasted into the editor. */
export function DeployForm({ name: fixedName, onDeployed }: { name?: string; onDeployed?: () => void }) {
  const [name, setName] = useState(fixedName ?? '');
  const [mode, setMode] = useState<'paste' | 'file'>('paste');
  const [code, setCode] = useState(SAMPLE);
  const [filename, setFilename] = useState('index.js');
  const [file, setFile] = useState<File | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<string | null>(null);
  const target = fixedName ?? name.trim();

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      const upload = mode === 'file' ? file : new Blob([code]);
      const uploadName = mode === 'file' ? (file?.name ?? '') : filename;
      if (!upload) throw new Error('choose a file to upload');
      const ext = uploadName.split('.').pop()?.toLowerCase() ?? '';
      const result = await api<{ function: FunctionView; version: VersionView }>(
        'POST',
        `/v1/functions/${encodeURIComponent(target)}/deploy?filename=${encodeURIComponent(uploadName)}`,
        { raw: upload, headers: { 'content-type': TYPES[ext] ?? 'application/octet-stream' } },
      );
      setDone(`Deployed ${result.function.name} as ${result.version.id} (${result.version.format})`);
      onDeployed?.();
      if (!fixedName) navigate(`${BASE}/functions/${encodeURIComponent(result.function.name)}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit} aria-label="Deploy" className="stack">
      {fixedName ? null : (
        <>
          <label htmlFor="deploy-name">Function name</label>
          <input id="deploy-name" required pattern="[a-z][a-z0-9\-]{0,62}" value={name} onChange={(e) => setName(e.target.value)} placeholder="hello" />
        </>
      )}
      <fieldset>
        <legend>Code</legend>
        <label><input type="radio" name="deploy-mode" checked={mode === 'paste'} onChange={() => setMode('paste')} /> Paste code</label>
        <label><input type="radio" name="deploy-mode" checked={mode === 'file'} onChange={() => setMode('file')} /> Upload a file</label>
      </fieldset>
      {mode === 'paste' ? (
        <>
          <label htmlFor="deploy-filename">File name (decides JavaScript or TypeScript)</label>
          <input id="deploy-filename" required pattern="[A-Za-z0-9._\-]{1,128}" value={filename} onChange={(e) => setFilename(e.target.value)} />
          <label htmlFor="deploy-code">Source</label>
          <textarea id="deploy-code" className="code" rows={14} spellCheck={false} value={code} onChange={(e) => setCode(e.target.value)} />
        </>
      ) : (
        <>
          <label htmlFor="deploy-file">File (.js, .ts, .zip or .tgz of a directory with package.json)</label>
          <input id="deploy-file" type="file" accept=".js,.mjs,.cjs,.ts,.zip,.tgz,.gz,.tar" onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
        </>
      )}
      <div>
        <button type="submit" disabled={busy || !target}>{busy ? 'Deploying…' : 'Deploy'}</button>
      </div>
      <ErrorBox error={error} />
      {done ? <p role="status" className="ok">{done}</p> : null}
    </form>
  );
}
