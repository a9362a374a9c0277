import { lazy, Suspense, useCallback, useEffect, useState } from 'react';
import { useParams } from 'react-router';
import { api, unwrap } from '../api/client';
import type { Order, OrderLine } from '../api/types';
import { useAuth } from '../auth/AuthProvider';
import { LinesTable, ShippingAddress, shortId } from '../components/OrderBits';
import { ErrorAlert, Loading, Money, Status } from '../components/ui';
import { useJob } from '../jobs/useJob';
import { useConfig } from '../lib/config';
import { formatDate, statusLabel } from '../lib/format';
import { useAsync } from '../lib/useAsync';

const StripePayment = lazy(() => import('../components/StripePayment'));

const PAY_POLL_MS = 1000;
const PAY_POLL_MAX = 60;

export default function OrderPage() {
  const { id = '' } = useParams();
  const { session } = useAuth();
  const config = useConfig();
  const order = useAsync((signal) => unwrap(api.GET('/api/v1/orders/{id}', { params: { path: { id } }, signal })), [id]);
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<unknown>(null);
  const [waiting, setWaiting] = useState(false);
  const [waitedOut, setWaitedOut] = useState(false);
  const [refundJob, setRefundJob] = useState<string | null>(null);
  const { reload, setData } = order;

  // After paying, poll the order (bounded) until the payment has been applied.
  useEffect(() => {
    if (!waiting) return;
    let tries = 0;
    let stop = false;
    const ctl = new AbortController();
    const tick = async () => {
      while (!stop && tries < PAY_POLL_MAX) {
        tries += 1;
        await new Promise((r) => setTimeout(r, PAY_POLL_MS));
        if (stop) return;
        try {
          const o = await unwrap(api.GET('/api/v1/orders/{id}', { params: { path: { id } }, signal: ctl.signal }));
          if (stop) return;
          setData(o);
          if (o.status !== 'pending_payment') {
            setWaiting(false);
            return;
          }
        } catch {
          // Try again on the next tick.
        }
      }
      if (!stop) {
        setWaiting(false);
        setWaitedOut(true);
      }
    };
    void tick();
    return () => {
      stop = true;
      ctl.abort();
    };
  }, [waiting, id, setData]);

  const refund = useJob(refundJob, { onFinal: () => reload() });

  const act = useCallback(async (fn: () => Promise<void>) => {
    setBusy(true);
    setActionError(null);
    try {
      await fn();
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(false);
    }
  }, []);

  if (order.error && !order.data) return <ErrorAlert error={order.error} />;
  const o: Order | undefined = order.data;
  if (!o) return <Loading />;

  const me = session?.user?.id;
  const asSeller = o.lines.length > 0 && o.lines.every((l) => l.seller_id !== undefined && l.seller_id === me);
  const pending = o.status === 'pending_payment';
  const refundable = o.status === 'paid' || o.status === 'partially_refunded';
  const nothingShipped = o.lines.every((l) => l.status !== 'shipped');
  const mode = config.data?.payment_mode;

  const pay = (outcome: 'succeeded' | 'failed') =>
    act(async () => {
      await unwrap(api.POST('/api/v1/dev/orders/{id}/payment', { params: { path: { id: o.id } }, body: { outcome } }));
      setWaitedOut(false);
      if (outcome === 'succeeded') setWaiting(true);
      else reload();
    });

  const startRefund = (line?: OrderLine) =>
    act(async () => {
      const accepted = await unwrap(
        api.POST('/api/v1/orders/{id}/refund', {
          params: { path: { id: o.id } },
          ...(line ? { body: { line_ids: [line.id] } } : {}),
        }),
      );
      setRefundJob(accepted.job_id);
    });

  const lineActions =
    !asSeller && refundable
      ? (l: OrderLine) =>
          l.status === 'awaiting_shipment' ? (
            <button type="button" className="secondary" disabled={busy || refund.polling} onClick={() => void startRefund(l)}
              aria-label={`Refund ${l.title}`}>
              Refund line
            </button>
          ) : null
      : undefined;

  return (
    <section>
      <h1>Order {shortId(o.id)}</h1>
      <p>
        Status: <Status status={o.status} />
        {o.status_reason ? <span className="muted"> ({statusLabel(o.status_reason)})</span> : null}
      </p>
      <p>
        Total: <Money cents={o.total_cents} currency={o.currency} />
        <span className="muted"> · placed {formatDate(o.created_at)}</span>
        {pending ? <span className="muted"> · pay before {formatDate(o.expires_at)}</span> : null}
      </p>
      <h2>Items</h2>
      <LinesTable order={o} actions={lineActions} />
      <h2>Shipping to</h2>
      <ShippingAddress value={o.shipping_address} />

      {!asSeller && pending ? (
        <div className="pay">
          <h2>Payment</h2>
          {config.error ? <ErrorAlert error={config.error} /> : null}
          {mode === 'dev' ? (
            <p>
              <button type="button" disabled={busy || waiting} onClick={() => void pay('succeeded')}>Pay (test mode)</button>{' '}
              <button type="button" className="secondary" disabled={busy || waiting} onClick={() => void pay('failed')}>
                Fail payment (test mode)
              </button>
            </p>
          ) : null}
          {mode === 'stripe' && config.data?.stripe_publishable_key && o.client_secret ? (
            <Suspense fallback={<Loading />}>
              <StripePayment publishableKey={config.data.stripe_publishable_key} clientSecret={o.client_secret}
                onPaid={() => setWaiting(true)} />
            </Suspense>
          ) : null}
          <p>
            <button type="button" className="secondary" disabled={busy || waiting}
              onClick={() => void act(async () => setData(await unwrap(api.POST('/api/v1/orders/{id}/cancel', { params: { path: { id: o.id } } }))))}>
              Cancel order
            </button>
          </p>
        </div>
      ) : null}
      {waiting ? <p role="status">Waiting for the payment to be confirmed…</p> : null}
      {waitedOut ? <p role="status">The payment is not confirmed yet. Reload this page in a moment.</p> : null}

      {!asSeller && refundable && nothingShipped ? (
        <p>
          <button type="button" disabled={busy || refund.polling} onClick={() => void startRefund()}>Refund order</button>
        </p>
      ) : null}
      {refundJob ? (
        <p role="status">
          Refund {refund.job ? statusLabel(refund.job.status) : 'requested'}
          {refund.job?.status === 'failed' && refund.job.error ? `: ${refund.job.error.message}` : ''}
        </p>
      ) : null}
      <ErrorAlert error={refund.error} />
      <ErrorAlert error={actionError} />
    </section>
  );
}
