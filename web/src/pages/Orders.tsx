import { useState } from 'react';
import { Link } from 'react-router';
import { api, unwrap } from '../api/client';
import { shortId } from '../components/OrderBits';
import { ErrorAlert, Loading, Money, Status, Thumb } from '../components/ui';
import { formatDate } from '../lib/format';
import { useAsync } from '../lib/useAsync';

// Thumbnails of an order's first lines; its line titles are listed in full.
const THUMBS = 3;

export default function Orders() {
  const [cursors, setCursors] = useState<string[]>(['']);
  const cursor = cursors[cursors.length - 1] ?? '';
  const page = useAsync(
    (signal) =>
      unwrap(api.GET('/api/v1/orders', { params: { query: { role: 'buyer', limit: 20, cursor: cursor || undefined } }, signal })),
    [cursor],
  );
  const next = page.data?.next_cursor ?? null;
  return (
    <section>
      <h1>Orders</h1>
      <ErrorAlert error={page.error} />
      {page.loading && !page.data ? <Loading /> : null}
      {page.data && page.data.items.length === 0 ? <p className="muted">You have not ordered anything yet.</p> : null}
      <ul className="orders" aria-label="My orders">
        {page.data?.items.map((o) => (
          <li key={o.id} className="order-row">
            <span className="thumbs">
              {o.lines.slice(0, THUMBS).map((l) => (
                <Thumb key={l.id} src={l.thumb_url} alt={l.title} className="thumb-sm" />
              ))}
            </span>
            <Link to={`/orders/${o.id}`}>Order {shortId(o.id)}</Link> <Status status={o.status} />{' '}
            <Money cents={o.total_cents} currency={o.currency} />
            <span className="muted">
              {' '}
              · {formatDate(o.created_at)} · {o.lines.map((l) => `${l.quantity} × ${l.title}`).join(', ')}
            </span>
          </li>
        ))}
      </ul>
      <div className="pager">
        <button type="button" disabled={cursors.length <= 1} onClick={() => setCursors(cursors.slice(0, -1))}>Previous page</button>
        <button type="button" disabled={!next} onClick={() => next && setCursors([...cursors, next])}>Next page</button>
      </div>
    </section>
  );
}
