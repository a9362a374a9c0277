import { useState, type FormEvent } from 'react';
import { Link } from 'react-router';
import { api, unwrap } from '../api/client';
import { ApiError } from '../api/errors';
import type { Order } from '../api/types';
import { LinesTable, ShippingAddress, shortId } from '../components/OrderBits';
import { ErrorAlert, Field, Loading, Money, Status } from '../components/ui';
import { formatDate } from '../lib/format';
import { useAsync } from '../lib/useAsync';

function ShipForm({ order, onShipped }: { order: Order; onShipped: (o: Order) => void }) {
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const waiting = order.lines.filter((l) => l.status === 'awaiting_shipment');
  if (waiting.length === 0) return null;

  async function ship(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const o = await unwrap(
        api.POST('/api/v1/orders/{id}/shipments', {
          params: { path: { id: order.id } },
          body: { line_ids: waiting.map((l) => l.id), tracking_code: code },
        }),
      );
      onShipped(o);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  const fields = error instanceof ApiError ? error.fields : {};
  return (
    <form className="inline-form" onSubmit={(e) => void ship(e)}>
      <Field label="Tracking code" value={code} onChange={(e) => setCode(e.target.value)} error={fields['tracking_code']} required />
      <button type="submit" disabled={busy}>Ship</button>
      <ErrorAlert error={error} />
    </form>
  );
}

export default function Sales() {
  const balance = useAsync((signal) => unwrap(api.GET('/api/v1/users/me/balance', { signal })), []);
  const [cursors, setCursors] = useState<string[]>(['']);
  const cursor = cursors[cursors.length - 1] ?? '';
  const page = useAsync(
    (signal) =>
      unwrap(api.GET('/api/v1/orders', { params: { query: { role: 'seller', limit: 20, cursor: cursor || undefined } }, signal })),
    [cursor],
  );
  const next = page.data?.next_cursor ?? null;

  function replace(o: Order) {
    if (!page.data) return;
    page.setData({ ...page.data, items: page.data.items.map((x) => (x.id === o.id ? o : x)) });
    balance.reload();
  }

  return (
    <section>
      <h1>Sales</h1>
      <h2>My balance</h2>
      <ErrorAlert error={balance.error} />
      {balance.data ? (
        balance.data.balances.length === 0 ? (
          <p className="muted" data-testid="balance">No sales yet.</p>
        ) : (
          <ul data-testid="balance">
            {balance.data.balances.map((b) => (
              <li key={b.currency}>
                <Money cents={b.amount_cents} currency={b.currency} />
              </li>
            ))}
          </ul>
        )
      ) : null}
      <h2>Orders with my items</h2>
      <ErrorAlert error={page.error} />
      {page.loading && !page.data ? <Loading /> : null}
      {page.data && page.data.items.length === 0 ? <p className="muted">Nothing sold yet.</p> : null}
      {page.data?.items.map((o) => (
        <article key={o.id} className="sale" aria-label={`Order ${shortId(o.id)}`}>
          <h3>
            <Link to={`/orders/${o.id}`}>Order {shortId(o.id)}</Link> <Status status={o.status} />
          </h3>
          <p className="muted">
            {formatDate(o.created_at)} · my lines: <Money cents={o.total_cents} currency={o.currency} />
          </p>
          <LinesTable order={o} />
          <ShippingAddress value={o.shipping_address} />
          <ShipForm order={o} onShipped={replace} />
        </article>
      ))}
      <div className="pager">
        <button type="button" disabled={cursors.length <= 1} onClick={() => setCursors(cursors.slice(0, -1))}>Previous page</button>
        <button type="button" disabled={!next} onClick={() => next && setCursors([...cursors, next])}>Next page</button>
      </div>
    </section>
  );
}
