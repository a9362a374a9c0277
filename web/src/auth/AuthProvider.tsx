import { createContext, useCallback, useContext, useEffect, useMemo, useSyncExternalStore, type ReactNode } from 'react';
import { Navigate, useLocation, useNavigate } from 'react-router';
import { api, unwrap } from '../api/client';
import { auth } from './session';
import type { Session } from './manager';

interface AuthValue {
  session: Session | null;
  login: (username: string, password: string) => Promise<void>;
  register: (username: string, email: string, password: string) => Promise<void>;
  logout: () => Promise<void>;
}

const AuthContext = createContext<AuthValue | null>(null);

export function useAuth(): AuthValue {
  const v = useContext(AuthContext);
  if (!v) throw new Error('useAuth outside AuthProvider');
  return v;
}

/** Where to come back to after logging in: the `next` parameter, if it is a path of this site. */
export function safeNext(next: string | null): string {
  if (!next || !next.startsWith('/') || next.startsWith('//')) return '/';
  return next;
}

export function loginPath(loc: { pathname: string; search: string }): string {
  if (loc.pathname === '/login' || loc.pathname === '/signup') return '/login';
  return `/login?next=${encodeURIComponent(loc.pathname + loc.search)}`;
}

export function AuthProvider({ children }: { children: ReactNode }) {
  const session = useSyncExternalStore(
    (cb) => auth.subscribe(cb),
    () => auth.session(),
  );
  const navigate = useNavigate();

  useEffect(
    () =>
      auth.subscribe((s, reason) => {
        if (s === null && reason === 'expired') {
          navigate(loginPath(window.location), { state: { expired: true } });
        }
      }),
    [navigate],
  );

  // Keep the username on the session (login may have used the email).
  useEffect(() => {
    if (session && !session.user) {
      unwrap(api.GET('/api/v1/users/me'))
        .then((me) => auth.setUser({ id: me.id, username: me.username }))
        .catch(() => undefined);
    }
  }, [session]);

  const login = useCallback(async (username: string, password: string) => {
    const tokens = await unwrap(api.POST('/api/v1/auth/token', { body: { username, password } }));
    auth.signIn(tokens);
    const me = await unwrap(api.GET('/api/v1/users/me'));
    auth.setUser({ id: me.id, username: me.username });
  }, []);

  const register = useCallback(
    async (username: string, email: string, password: string) => {
      await unwrap(api.POST('/api/v1/auth/register', { body: { username, email, password } }));
      await login(username, password);
    },
    [login],
  );

  const logout = useCallback(async () => {
    await auth.logout();
    navigate('/');
  }, [navigate]);

  const value = useMemo(() => ({ session, login, register, logout }), [session, login, register, logout]);
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

/** Pages for signed-in users: everyone else goes to log in, and comes back afterwards. */
export function RequireAuth({ children }: { children: ReactNode }) {
  const { session } = useAuth();
  const location = useLocation();
  if (!session) return <Navigate to={loginPath(location)} replace />;
  return <>{children}</>;
}
