export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json; charset=utf-8' } });
}

export function envelope(status: number, code: string, message: string, details: unknown = {}): Response {
  return json(status, { error: { code, message, details } });
}

/** A Storage kept in memory, to share between simulated tabs. */
export class MemoryStorage implements Storage {
  private m = new Map<string, string>();
  get length() {
    return this.m.size;
  }
  clear() {
    this.m.clear();
  }
  getItem(k: string) {
    return this.m.has(k) ? (this.m.get(k) as string) : null;
  }
  key(i: number) {
    return [...this.m.keys()][i] ?? null;
  }
  removeItem(k: string) {
    this.m.delete(k);
  }
  setItem(k: string, v: string) {
    this.m.set(k, String(v));
  }
}

/** navigator.locks for simulated tabs: one holder at a time, in request order. */
export class SharedLocks {
  private tail: Promise<unknown> = Promise.resolve();
  held = 0;
  maxHeld = 0;
  contended = 0;
  private busy = 0;
  request<T>(_name: string, options: { ifAvailable?: boolean }, cb: (lock: unknown) => Promise<T>): Promise<T> {
    if (options.ifAvailable && this.busy > 0) {
      this.contended += 1;
      return cb(null);
    }
    this.busy += 1;
    const run = this.tail.then(async () => {
      this.held += 1;
      this.maxHeld = Math.max(this.maxHeld, this.held);
      try {
        return await cb({ name: _name });
      } finally {
        this.held -= 1;
        this.busy -= 1;
      }
    });
    this.tail = run.catch(() => undefined);
    return run;
  }
}

/** A BroadcastChannel between simulated tabs: a message reaches every other member. */
export class Bus {
  private members = new Set<BusChannel>();
  channel(): BusChannel {
    const c = new BusChannel(this.members);
    this.members.add(c);
    return c;
  }
}

class BusChannel {
  private listeners: ((e: MessageEvent) => void)[] = [];
  private readonly members: Set<BusChannel>;
  constructor(members: Set<BusChannel>) {
    this.members = members;
  }
  postMessage(data: unknown) {
    for (const m of this.members) if (m !== this) for (const l of m.listeners) l(new MessageEvent('message', { data }));
  }
  addEventListener(_t: 'message', l: (e: MessageEvent) => void) {
    this.listeners.push(l);
  }
  close() {
    this.members.delete(this);
  }
}
