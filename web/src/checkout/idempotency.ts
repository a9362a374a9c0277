import type { Cart } from '../api/types';

/** The checkout under way in this tab: its Idempotency-Key and, once accepted, its job. */
export interface PendingCheckout {
  fingerprint: string;
  key: string;
  /** The address the request was sent for, to send it again after a reload. */
  address_id?: string | undefined;
  job_id?: string | undefined;
}

export const CHECKOUT_KEY = 'marketplace.checkout';

type Store = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;

function defaultStore(): Store {
  return window.sessionStorage;
}

export function newKey(): string {
  if (typeof crypto !== 'undefined' && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/** What the checkout is of: the cart's lines (and prices) and the shipping address. */
export function cartFingerprint(cart: Pick<Cart, 'items'>, addressId: string): string {
  const lines = cart.items
    .map((i) => `${i.listing_id}:${i.quantity}:${i.unit_price_cents}:${i.currency}`)
    .sort()
    .join(',');
  return `${addressId}|${lines}`;
}

export function pendingCheckout(store: Store = defaultStore()): PendingCheckout | null {
  const raw = store.getItem(CHECKOUT_KEY);
  if (!raw) return null;
  try {
    const v = JSON.parse(raw) as Partial<PendingCheckout>;
    if (typeof v.key !== 'string' || typeof v.fingerprint !== 'string') return null;
    return {
      key: v.key,
      fingerprint: v.fingerprint,
      address_id: typeof v.address_id === 'string' ? v.address_id : undefined,
      job_id: typeof v.job_id === 'string' ? v.job_id : undefined,
    };
  } catch {
    return null;
  }
}

/** The key for checking out this cart: the stored one while the cart is the same, else a new one. */
export function checkoutKey(fingerprint: string, store: Store = defaultStore(), make: () => string = newKey): string {
  const cur = pendingCheckout(store);
  if (cur && cur.fingerprint === fingerprint) return cur.key;
  const next: PendingCheckout = { fingerprint, key: make() };
  store.setItem(CHECKOUT_KEY, JSON.stringify(next));
  return next.key;
}

export function rememberAddress(key: string, addressId: string, store: Store = defaultStore()): void {
  const cur = pendingCheckout(store);
  if (cur && cur.key === key) store.setItem(CHECKOUT_KEY, JSON.stringify({ ...cur, address_id: addressId }));
}

export function rememberJob(key: string, jobId: string, store: Store = defaultStore()): void {
  const cur = pendingCheckout(store);
  const next: PendingCheckout = cur && cur.key === key ? { ...cur, job_id: jobId } : { fingerprint: cur?.fingerprint ?? '', key, job_id: jobId };
  store.setItem(CHECKOUT_KEY, JSON.stringify(next));
}

/** Forget the key: the job is final, so the next checkout is a new one. */
export function clearCheckout(store: Store = defaultStore()): void {
  store.removeItem(CHECKOUT_KEY);
}
