import { useState, type FormEvent } from 'react';
import { useLocation, useNavigate, useSearchParams } from 'react-router';
import { ApiError } from '../api/errors';
import { safeNext, useAuth } from '../auth/AuthProvider';
import { ErrorAlert, Field } from '../components/ui';

function useAfterLogin() {
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const next = safeNext(params.get('next'));
  return { go: () => navigate(next, { replace: true }) };
}

export function Login() {
  const { login } = useAuth();
  const { go } = useAfterLogin();
  const location = useLocation();
  const expired = (location.state as { expired?: boolean } | null)?.expired === true;
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await login(username, password);
      go();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  const fields = error instanceof ApiError ? error.fields : {};
  return (
    <section className="narrow">
      <h1>Log in</h1>
      {expired ? <p className="notice">Your session has ended. Log in again to continue.</p> : null}
      <form onSubmit={(e) => void submit(e)} noValidate>
        <Field label="Username" hint="Your username or email." autoComplete="username" value={username}
          onChange={(e) => setUsername(e.target.value)} error={fields['username']} required />
        <Field label="Password" type="password" autoComplete="current-password" value={password}
          onChange={(e) => setPassword(e.target.value)} error={fields['password']} required />
        <ErrorAlert error={error} />
        <button type="submit" disabled={busy}>Log in</button>
      </form>
    </section>
  );
}

export function Signup() {
  const { register } = useAuth();
  const { go } = useAfterLogin();
  const [username, setUsername] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await register(username, email, password);
      go();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  const fields = error instanceof ApiError ? error.fields : {};
  return (
    <section className="narrow">
      <h1>Sign up</h1>
      <form onSubmit={(e) => void submit(e)} noValidate>
        <Field label="Username" autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)}
          error={fields['username']} hint="3–150 ASCII letters, digits or _.@+-" required />
        <Field label="Email" type="email" autoComplete="email" value={email} onChange={(e) => setEmail(e.target.value)}
          error={fields['email']} required />
        <Field label="Password" type="password" autoComplete="new-password" value={password}
          onChange={(e) => setPassword(e.target.value)} error={fields['password']} hint="8–128 characters." required />
        <ErrorAlert error={error} />
        <button type="submit" disabled={busy}>Sign up</button>
      </form>
    </section>
  );
}
