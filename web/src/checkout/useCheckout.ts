import { useCallback, useEffect, useRef, useState } from 'react';
import { api, unwrap } from '../api/client';
import { ApiError, isRecord } from '../api/errors';
import type { Cart, Job } from '../api/types';
import { useJob } from '../jobs/useJob';
import { cartFingerprint, checkoutKey, clearCheckout, pendingCheckout, rememberAddress, rememberJob } from './idempotency';

/** The order a finished checkout job made, whatever shape its result is declared with. */
export function checkoutOrderId(job: Pick<Job, 'result'> | null | undefined): string | null {
  const r: unknown = job?.result;
  if (isRecord(r) && typeof r['order_id'] === 'string') return r['order_id'];
  return null;
}

export interface CheckoutState {
  start: (cart: Pick<Cart, 'items'>, addressId: string) => Promise<void>;
  starting: boolean;
  jobId: string | null;
  job: Job | null;
  error: unknown;
  retry: () => void;
}

/**
 * Checkout with an Idempotency-Key kept in sessionStorage for this cart: a double click sends one
 * request, a reload resumes the stored job, and the key is forgotten once its job is final.
 */
export function useCheckout(onOrder: (orderId: string) => void, options: { minIntervalMs?: number } = {}): CheckoutState {
  const [jobId, setJobId] = useState<string | null>(() => pendingCheckout()?.job_id ?? null);
  const [startError, setStartError] = useState<unknown>(null);
  const [starting, setStarting] = useState(false);
  const inflight = useRef<Promise<void> | null>(null);

  const onFinal = useCallback(
    (job: Job) => {
      clearCheckout();
      const orderId = job.status === 'succeeded' ? checkoutOrderId(job) : null;
      if (orderId) onOrder(orderId);
    },
    [onOrder],
  );
  const polled = useJob(jobId, { onFinal, minIntervalMs: options.minIntervalMs });

  const send = useCallback((key: string, addressId: string) => {
    if (inflight.current) return inflight.current;
    setStartError(null);
    setStarting(true);
    const run = (async () => {
      try {
        const accepted = await unwrap(
          api.POST('/api/v1/checkout', {
            params: { header: { 'Idempotency-Key': key } },
            body: { address_id: addressId },
          }),
        );
        rememberJob(key, accepted.job_id);
        setJobId(accepted.job_id);
      } catch (e) {
        const other = e instanceof ApiError ? e.details['job_id'] : undefined;
        if (e instanceof ApiError && e.code === 'checkout_in_progress' && typeof other === 'string') {
          // Another checkout of this cart is running: follow that one.
          rememberJob(key, other);
          setJobId(other);
          return;
        }
        // A refusal made no job, so the next try is a new checkout; on a network or server
        // failure the request may have been taken, so the key stays for the retry.
        if (e instanceof ApiError && e.status >= 400 && e.status < 500) clearCheckout();
        setStartError(e);
      } finally {
        setStarting(false);
        inflight.current = null;
      }
    })();
    inflight.current = run;
    return run;
  }, []);

  const start = useCallback(
    (cart: Pick<Cart, 'items'>, addressId: string) => {
      if (inflight.current) return inflight.current;
      const key = checkoutKey(cartFingerprint(cart, addressId));
      rememberAddress(key, addressId);
      return send(key, addressId);
    },
    [send],
  );

  // Reloaded while the request was out: the same key gets the same job back from the server.
  useEffect(() => {
    const p = pendingCheckout();
    if (p && !p.job_id && p.address_id) void send(p.key, p.address_id);
  }, [send]);

  let jobError: ApiError | null = null;
  if (polled.job?.status === 'failed') {
    const e = polled.job.error;
    jobError = new ApiError(409, e?.code ? String(e.code) : 'job_failed', e?.message ? String(e.message) : 'The checkout failed.');
  }
  const error = startError ?? polled.error ?? jobError;

  return { start, starting, jobId, job: polled.job, error, retry: polled.retry };
}
