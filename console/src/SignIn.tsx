import { useState, type FormEvent } from 'react';
import { ApiError, api, setToken } from './api.ts';
import { ErrorBox } from './components.tsx';

/** Checks the token against the API before keeping it, so a wrong one is reported here, not on every page. */
export function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [token, setValue] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api('GET', '/v1/functions', { token: token.trim() });
      setToken(token.trim());
      onSignedIn();
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? new ApiError(401, err.code, `${err.message}. The token is in the node's data directory (admin-token).`) : err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="signin">
      <h1>Continuum</h1>
      <form onSubmit={submit} aria-label="Sign in">
        <label htmlFor="token">Admin token</label>
        <input id="token" name="token" type="password" autoComplete="current-password" autoFocus required value={token} onChange={(e) => setValue(e.target.value)} />
        <button type="submit" disabled={busy || !token.trim()}>Sign in</button>
        <ErrorBox error={error} />
        <p className="muted">The token is kept in this tab only (sessionStorage).</p>
      </form>
    </main>
  );
}
