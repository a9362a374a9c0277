import { describe, expect, it, vi } from 'vitest';
import { AuthManager, STORAGE_KEY, type AuthDeps, type Session } from './manager';
import { authFetch } from '../api/client';
import { Bus, deferred, envelope, json, MemoryStorage, SharedLocks, type Deferred } from '../test/util';

const BASE = 'http://tab.test';
const T0 = 1_000_000;

function tokens(n: number) {
  return { access_token: `access-${n}`, refresh_token: `refresh-${n}`, token_type: 'Bearer', expires_in: 600 };
}

/** Two (or more) tabs of one browser: shared storage, lock and channel, one server. */
function browser() {
  const storage = new MemoryStorage();
  const locks = new SharedLocks();
  const bus = new Bus();
  let now = T0;
  const refreshCalls: string[] = [];
  const pending: Deferred<Response>[] = [];
  const fetch = vi.fn(async (req: Request) => {
    const url = new URL(req.url);
    if (url.pathname === '/api/v1/auth/refresh') {
      const body = (await req.json()) as { refresh_token: string };
      refreshCalls.push(body.refresh_token);
      const d = deferred<Response>();
      pending.push(d);
      return d.promise;
    }
    if (url.pathname === '/api/v1/auth/logout') return new Response(null, { status: 204 });
    return json(200, { ok: true });
  });
  const tab = (): AuthManager => {
    const deps: AuthDeps = {
      storage,
      locks,
      channel: bus.channel(),
      events: null,
      fetch,
      baseUrl: BASE,
      now: () => now,
      setTimeout: () => 0,
      clearTimeout: () => undefined,
    };
    return new AuthManager(deps);
  };
  return {
    storage,
    locks,
    fetch,
    refreshCalls,
    pending,
    tab,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

async function until(cond: () => boolean) {
  for (let i = 0; i < 100 && !cond(); i++) await Promise.resolve();
  expect(cond()).toBe(true);
}

describe('AuthManager', () => {
  it('refreshes at 80% of the access token lifetime', () => {
    const timers: number[] = [];
    const m = new AuthManager({
      storage: new MemoryStorage(),
      locks: null,
      channel: null,
      events: null,
      fetch: vi.fn(),
      baseUrl: BASE,
      now: () => T0,
      setTimeout: (_fn, ms) => {
        timers.push(ms);
        return timers.length;
      },
      clearTimeout: () => undefined,
    });
    const s = m.signIn(tokens(1));
    expect(s.expires_at).toBe(T0 + 600_000);
    expect(timers.at(-1)).toBe(480_000);
    expect(m.isDue(s)).toBe(false);
    expect(m.isDue({ ...s, expires_at: T0 + 119_999 })).toBe(true);
  });

  it('two tabs due at once make exactly one POST /auth/refresh and both end with the new tokens', async () => {
    const b = browser();
    const one = b.tab();
    const two = b.tab();
    one.signIn(tokens(1), { id: 'u1', username: 'alice' });
    b.advance(500_000); // past 80% of 600 s

    const a = one.accessToken();
    const c = two.accessToken();
    await until(() => b.refreshCalls.length === 1);
    // The second tab waits on the lock while the first one refreshes.
    expect(b.locks.held).toBe(1);
    b.pending[0]?.resolve(json(200, tokens(2)));

    await expect(a).resolves.toBe('access-2');
    await expect(c).resolves.toBe('access-2');
    expect(b.refreshCalls).toEqual(['refresh-1']);
    expect(b.fetch).toHaveBeenCalledTimes(1);
    expect(b.locks.maxHeld).toBe(1);
    expect(b.locks.contended).toBe(1);
    for (const t of [one, two]) {
      expect(t.session()?.access_token).toBe('access-2');
      expect(t.session()?.refresh_token).toBe('refresh-2');
      expect(t.session()?.user?.username).toBe('alice');
    }
  });

  it('waits for the other tab\'s write when it reaches this tab after the lock does', async () => {
    // Tab two sees localStorage through a copy that is only brought up to date when the change
    // notification arrives, as a browser tab in another process does.
    const shared = new MemoryStorage();
    const copy = new MemoryStorage();
    const locks = new SharedLocks();
    let now = T0;
    const refreshCalls: string[] = [];
    const answers: ReturnType<typeof deferred<Response>>[] = [];
    const fetch = vi.fn(async (req: Request) => {
      refreshCalls.push(((await req.json()) as { refresh_token: string }).refresh_token);
      const d = deferred<Response>();
      answers.push(d);
      return d.promise;
    });
    const toTwo: ((e: MessageEvent) => void)[] = [];
    const held: (() => void)[] = [];
    const base = { locks, events: null, fetch, baseUrl: BASE, now: () => now, setTimeout: () => 0, clearTimeout: () => undefined };
    const one = new AuthManager({
      ...base,
      storage: shared,
      channel: {
        postMessage: (data) =>
          held.push(() => {
            const v = shared.getItem(STORAGE_KEY);
            if (v === null) copy.removeItem(STORAGE_KEY);
            else copy.setItem(STORAGE_KEY, v);
            for (const l of toTwo) l(new MessageEvent('message', { data }));
          }),
        addEventListener: () => undefined,
        close: () => undefined,
      },
    });
    const two = new AuthManager({
      ...base,
      storage: copy,
      channel: { postMessage: () => undefined, addEventListener: (_t, l) => toTwo.push(l), close: () => undefined },
    });
    one.signIn(tokens(1));
    held.splice(0).forEach((f) => f());
    now += 500_000;

    const a = one.accessToken();
    const b = two.accessToken();
    await until(() => answers.length === 1);
    answers[0]?.resolve(json(200, tokens(2)));
    await expect(a).resolves.toBe('access-2');
    // Tab one let the lock go; its write has not reached tab two yet.
    for (let i = 0; i < 20; i++) await Promise.resolve();
    expect(refreshCalls).toHaveLength(1);
    held.splice(0).forEach((f) => f());
    await expect(b).resolves.toBe('access-2');
    expect(refreshCalls).toEqual(['refresh-1']);
  });

  it('tells the other tab when tokens change, and skips a refresh another tab already made', async () => {
    const b = browser();
    const one = b.tab();
    const two = b.tab();
    const seen: (Session | null)[] = [];
    two.subscribe((s) => seen.push(s));
    one.signIn(tokens(1));
    expect(seen.at(-1)?.access_token).toBe('access-1');
    b.advance(500_000);
    const r = one.refresh();
    await until(() => b.pending.length === 1);
    b.pending[0]?.resolve(json(200, tokens(2)));
    await r;
    expect(seen.at(-1)?.access_token).toBe('access-2');
    // Tab two's own timer fires late: the stored tokens are fresh, so nothing is sent.
    await expect(two.refresh()).resolves.toMatchObject({ access_token: 'access-2' });
    expect(b.refreshCalls).toHaveLength(1);
  });

  it('ends the session in every tab when the refresh token is refused', async () => {
    const b = browser();
    const one = b.tab();
    const two = b.tab();
    const reasons: (string | undefined)[] = [];
    two.subscribe((s, reason) => {
      if (!s) reasons.push(reason);
    });
    one.signIn(tokens(1));
    b.advance(590_000);
    const r = one.refresh();
    await until(() => b.pending.length === 1);
    b.pending[0]?.resolve(envelope(401, 'invalid_token', 'refresh token revoked'));
    await expect(r).resolves.toBeNull();
    expect(b.storage.getItem(STORAGE_KEY)).toBeNull();
    expect(two.session()).toBeNull();
    expect(reasons).toContain('elsewhere');
  });

  it('logs out in every tab and revokes the refresh token', async () => {
    const b = browser();
    const one = b.tab();
    const two = b.tab();
    one.signIn(tokens(1));
    await one.logout();
    expect(two.session()).toBeNull();
    const call = b.fetch.mock.calls.find(([r]) => r.url.endsWith('/api/v1/auth/logout'));
    expect(call).toBeDefined();
  });
});

describe('authFetch', () => {
  it('on a 401 refreshes once, retries with the new token, and ends the session when that fails too', async () => {
    const b = browser();
    const tab = b.tab();
    tab.signIn(tokens(1));
    const ended: (string | undefined)[] = [];
    tab.subscribe((s, reason) => {
      if (!s) ended.push(reason);
    });
    const sent: string[] = [];
    let answer401 = 1;
    const send = vi.fn(async (r: Request) => {
      sent.push(r.headers.get('Authorization') ?? '');
      if (answer401 > 0) {
        answer401 -= 1;
        return envelope(401, 'unauthorized', 'token expired');
      }
      return json(200, { ok: true });
    });
    const f = authFetch(tab, send);

    const res = f(new Request(`${BASE}/api/v1/cart`));
    await until(() => b.pending.length === 1);
    b.pending[0]?.resolve(json(200, tokens(2)));
    expect((await res).status).toBe(200);
    expect(sent).toEqual(['Bearer access-1', 'Bearer access-2']);

    answer401 = 2;
    const res2 = f(new Request(`${BASE}/api/v1/cart`));
    await until(() => b.pending.length === 2);
    b.pending[1]?.resolve(json(200, tokens(3)));
    expect((await res2).status).toBe(401);
    expect(ended).toEqual(['expired']);
    expect(tab.session()).toBeNull();
  });

  it('sends auth calls without a token', async () => {
    const b = browser();
    const tab = b.tab();
    tab.signIn(tokens(1));
    const send = vi.fn(async (r: Request) => {
      expect(r.headers.get('Authorization')).toBeNull();
      return envelope(401, 'invalid_credentials', 'username or password is incorrect');
    });
    const res = await authFetch(tab, send)(new Request(`${BASE}/api/v1/auth/token`, { method: 'POST', body: '{}' }));
    expect(res.status).toBe(401);
    expect(tab.session()).not.toBeNull();
  });
});
