import { useState } from 'preact/hooks';
import { describe, logIn, signUp, state } from './store';

export function Auth() {
  const [mode, setMode] = useState<'login' | 'signup'>('login');
  const [username, setUsername] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (mode === 'signup') await signUp(username.trim(), email.trim(), password);
      else await logIn(email.trim(), password);
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  }

  const label = mode === 'signup' ? 'Sign up' : 'Log in';
  return (
    <div class="auth">
      <form class="card" onSubmit={submit} aria-labelledby="auth-title">
        <h1 id="auth-title">SoulChat</h1>
        <div role="tablist" class="tabs" aria-label="Account">
          <button type="button" role="tab" aria-selected={mode === 'login'} onClick={() => setMode('login')}>
            Log in
          </button>
          <button type="button" role="tab" aria-selected={mode === 'signup'} onClick={() => setMode('signup')}>
            Sign up
          </button>
        </div>
        {state.notice && <p class="notice" role="status">{state.notice}</p>}
        {mode === 'signup' && (
          <label>
            Username
            <input
              name="username"
              autocomplete="username"
              required
              maxLength={32}
              pattern="[A-Za-z0-9_.\-]+"
              value={username}
              onInput={(e) => setUsername(e.currentTarget.value)}
            />
          </label>
        )}
        <label>
          Email
          <input
            name="email"
            type="email"
            autocomplete="email"
            required
            value={email}
            onInput={(e) => setEmail(e.currentTarget.value)}
          />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autocomplete={mode === 'signup' ? 'new-password' : 'current-password'}
            required
            minLength={8}
            maxLength={128}
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {label}
        </button>
      </form>
    </div>
  );
}
