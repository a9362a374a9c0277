import createClient from 'openapi-fetch';
import type { paths, TokenResponse } from '../api/types';
import { toApiError } from '../api/errors';

/** What is kept in localStorage for a signed-in user. */
export interface Session {
  access_token: string;
  refresh_token: string;
  /** When the access token expires, ms since the epoch. */
  expires_at: number;
  /** The access token's lifetime in ms, as the server stated it. */
  lifetime_ms: number;
  user?: { id: string; username: string } | undefined;
}

export interface LockLike {
  /** navigator.locks.request: with `ifAvailable`, the callback gets null when the lock is held. */
  request<T>(name: string, options: { ifAvailable?: boolean }, callback: (lock: unknown) => Promise<T>): Promise<T>;
}

export interface ChannelLike {
  postMessage(message: unknown): void;
  addEventListener(type: 'message', listener: (event: MessageEvent) => void): void;
  close(): void;
}

export type EndReason = 'logout' | 'expired' | 'elsewhere';

export interface AuthDeps {
  storage: Storage;
  /** Cross-tab lock (navigator.locks); without one, refreshes are only single-flight within this tab. */
  locks: LockLike | null;
  /** Tells other tabs that the stored session changed. */
  channel: ChannelLike | null;
  /** Window whose `storage` events report changes made by other tabs. */
  events: Pick<Window, 'addEventListener' | 'removeEventListener'> | null;
  fetch: (request: Request) => Promise<Response>;
  baseUrl: string;
  now: () => number;
  setTimeout: (fn: () => void, ms: number) => unknown;
  clearTimeout: (handle: unknown) => void;
}

export const STORAGE_KEY = 'marketplace.session';
export const LOCK_NAME = 'auth-refresh';
/** Refresh once this share of the access token's lifetime has passed. */
export const REFRESH_AT = 0.8;
const RETRY_AFTER_FAILURE_MS = 15_000;
/** After waiting for the lock, how long to wait for the holder's write to reach this tab. */
const SETTLE_MS = 300;
/** A due session written by another tab is refreshed after this pause, not at once. */
const EXTERNAL_DELAY_MS = 1_000;

type Listener = (session: Session | null, reason?: EndReason) => void;

function parseSession(raw: string | null): Session | null {
  if (!raw) return null;
  try {
    const v: unknown = JSON.parse(raw);
    if (typeof v !== 'object' || v === null) return null;
    const s = v as Record<string, unknown>;
    if (typeof s['access_token'] !== 'string' || typeof s['refresh_token'] !== 'string') return null;
    const expires = Number(s['expires_at']);
    const lifetime = Number(s['lifetime_ms']);
    const u = s['user'];
    let user: Session['user'];
    if (typeof u === 'object' && u !== null) {
      const r = u as Record<string, unknown>;
      if (typeof r['id'] === 'string' && typeof r['username'] === 'string') user = { id: r['id'], username: r['username'] };
    }
    return {
      access_token: s['access_token'],
      refresh_token: s['refresh_token'],
      expires_at: Number.isFinite(expires) ? expires : 0,
      lifetime_ms: Number.isFinite(lifetime) && lifetime > 0 ? lifetime : 60_000,
      user,
    };
  } catch {
    return null;
  }
}

export class AuthManager {
  private readonly deps: AuthDeps;
  private readonly client;
  private listeners = new Set<Listener>();
  private inflight: Promise<Session | null> | null = null;
  private localQueue: Promise<unknown> = Promise.resolve();
  private timer: unknown = null;
  private cachedRaw: string | null = null;
  private cached: Session | null = null;
  private externalCount = 0;
  private externalWaiters: (() => void)[] = [];
  private readonly onStorage = (e: StorageEvent) => {
    if (e.key === STORAGE_KEY || e.key === null) this.external();
  };

  constructor(deps: AuthDeps) {
    this.deps = deps;
    this.client = createClient<paths>({ baseUrl: deps.baseUrl, fetch: (r) => deps.fetch(r) });
    deps.events?.addEventListener('storage', this.onStorage as EventListener);
    deps.channel?.addEventListener('message', () => this.external());
    this.schedule();
  }

  dispose(): void {
    this.deps.events?.removeEventListener('storage', this.onStorage as EventListener);
    this.deps.channel?.close();
    if (this.timer !== null) this.deps.clearTimeout(this.timer);
    this.timer = null;
    this.listeners.clear();
  }

  /** The stored session (a stable object while it does not change). */
  session(): Session | null {
    const raw = this.deps.storage.getItem(STORAGE_KEY);
    if (raw !== this.cachedRaw) {
      this.cachedRaw = raw;
      this.cached = parseSession(raw);
    }
    return this.cached;
  }

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** True once REFRESH_AT of the access token's lifetime has passed. */
  isDue(s: Session): boolean {
    return this.deps.now() >= s.expires_at - (1 - REFRESH_AT) * s.lifetime_ms;
  }

  /** Stores the tokens of a fresh login (or of a refresh). */
  signIn(tokens: TokenResponse, user?: Session['user']): Session {
    const s = this.fromTokens(tokens, user);
    this.write(s);
    return s;
  }

  setUser(user: NonNullable<Session['user']>): void {
    const s = this.session();
    if (s) this.write({ ...s, user });
  }

  /** An access token to send, refreshed first when it is due. */
  async accessToken(): Promise<string | null> {
    const s = this.session();
    if (!s) return null;
    if (!this.isDue(s)) return s.access_token;
    try {
      const fresh = await this.refresh();
      return fresh?.access_token ?? null;
    } catch {
      // Network trouble: send what we have; a 401 brings us back here.
      return this.session()?.access_token ?? null;
    }
  }

  /**
   * Rotates the refresh token, once across all tabs: inside the lock the stored session is read
   * again, and the refresh is skipped when another tab already did it.
   * `rejected` is an access token the server refused: refresh unless the stored one is newer.
   */
  refresh(rejected?: string): Promise<Session | null> {
    if (this.inflight) return this.inflight;
    const run = this.withLock(async () => {
      const cur = this.session();
      if (!cur) return null;
      const stillGood = rejected !== undefined ? cur.access_token !== rejected : !this.isDue(cur);
      if (stillGood) {
        this.schedule();
        return cur;
      }
      const { data, error, response } = await this.client.POST('/api/v1/auth/refresh', {
        body: { refresh_token: cur.refresh_token },
      });
      if (data) {
        const s = this.fromTokens(data, cur.user);
        this.write(s);
        return s;
      }
      if (response.status === 401 || response.status === 400 || response.status === 403) {
        this.end('expired');
        return null;
      }
      throw toApiError(response.status, error);
    });
    this.inflight = run.finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  /** Ends the session here and in every tab, and revokes it on the server. */
  async logout(): Promise<void> {
    const token = await this.withLock(async () => {
      const cur = this.session();
      this.end('logout');
      return cur?.refresh_token ?? null;
    });
    if (token) {
      try {
        await this.client.POST('/api/v1/auth/logout', { body: { refresh_token: token } });
      } catch {
        // The tokens are gone from this browser either way.
      }
    }
  }

  /** The server refused the session for good (or the user must log in for this page). */
  end(reason: EndReason): void {
    const had = this.session() !== null;
    this.deps.storage.removeItem(STORAGE_KEY);
    this.schedule();
    if (had) this.deps.channel?.postMessage({ type: 'session' });
    this.emit(null, reason);
  }

  private fromTokens(t: TokenResponse, user: Session['user']): Session {
    const lifetime = Math.max(1, Number(t.expires_in)) * 1000;
    return {
      access_token: t.access_token,
      refresh_token: t.refresh_token,
      expires_at: this.deps.now() + lifetime,
      lifetime_ms: lifetime,
      user,
    };
  }

  private write(s: Session): void {
    this.deps.storage.setItem(STORAGE_KEY, JSON.stringify(s));
    this.deps.channel?.postMessage({ type: 'session' });
    this.schedule();
    this.emit(this.session());
  }

  /** Another tab changed the stored session. */
  private external(): void {
    this.externalCount += 1;
    for (const w of this.externalWaiters.splice(0)) w();
    this.schedule(EXTERNAL_DELAY_MS);
    const s = this.session();
    this.emit(s, s ? undefined : 'elsewhere');
  }

  private emit(s: Session | null, reason?: EndReason): void {
    for (const fn of [...this.listeners]) fn(s, reason);
  }

  private schedule(minDelay = 0): void {
    if (this.timer !== null) this.deps.clearTimeout(this.timer);
    this.timer = null;
    const s = this.session();
    if (!s) return;
    const at = s.expires_at - (1 - REFRESH_AT) * s.lifetime_ms;
    const wait = Math.max(minDelay, at - this.deps.now());
    this.timer = this.deps.setTimeout(() => {
      this.timer = null;
      this.refresh().catch(() => {
        this.timer = this.deps.setTimeout(() => void this.refresh().catch(() => undefined), RETRY_AFTER_FAILURE_MS);
      });
    }, wait);
  }

  private async withLock<T>(fn: () => Promise<T>): Promise<T> {
    const locks = this.deps.locks;
    if (!locks) {
      const next = this.localQueue.then(fn, fn);
      this.localQueue = next.catch(() => undefined);
      return next;
    }
    const mark = this.externalCount;
    const free = await locks.request(LOCK_NAME, { ifAvailable: true }, async (lock) =>
      lock ? { value: await fn() } : null,
    );
    if (free) return free.value;
    // Another tab held the lock, most likely refreshing. Its write to localStorage reaches this
    // tab on its own path, which may arrive after the lock does: wait for it before reading.
    return locks.request(LOCK_NAME, {}, async () => {
      await this.settle(mark);
      return fn();
    });
  }

  private settle(mark: number): Promise<void> {
    if (this.externalCount !== mark) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.externalWaiters = this.externalWaiters.filter((w) => w !== done);
        resolve();
      };
      this.externalWaiters.push(done);
      this.deps.setTimeout(done, SETTLE_MS);
    });
  }
}

/** The manager for this browser tab. */
export function browserAuthDeps(): AuthDeps {
  const hasLocks = typeof navigator !== 'undefined' && 'locks' in navigator && navigator.locks != null;
  return {
    storage: window.localStorage,
    locks: hasLocks
      ? {
          request: <T,>(name: string, options: { ifAvailable?: boolean }, cb: (lock: unknown) => Promise<T>) =>
            navigator.locks.request(name, options, (lock) => cb(lock)) as Promise<T>,
        }
      : null,
    channel: typeof BroadcastChannel === 'function' ? new BroadcastChannel('marketplace-auth') : null,
    events: window,
    fetch: (r) => globalThis.fetch(r),
    baseUrl: window.location.origin,
    now: () => Date.now(),
    setTimeout: (fn, ms) => window.setTimeout(fn, ms),
    clearTimeout: (h) => window.clearTimeout(h as number),
  };
}
