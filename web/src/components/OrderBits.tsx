import { isRecord } from '../api/errors';
import type { Order, OrderLine } from '../api/types';
import { Money, Status, Thumb } from './ui';

/** The shipping address snapshot, whatever shape it is declared with. */
export function ShippingAddress({ value }: { value: unknown }) {
  if (!isRecord(value)) return null;
  const pick = (k: string) => (typeof value[k] === 'string' && value[k] !== '' ? (value[k] as string) : null);
  const text =
    pick('formatted_address') ??
    ['line1', 'line2', 'city', 'region', 'postal_code', 'country'].map(pick).filter(Boolean).join(', ');
  return <address>{text}</address>;
}

export function shortId(id: string): string {
  return id.slice(-8);
}

export function LinesTable({
  order,
  actions,
}: {
  order: Pick<Order, 'currency'> & { lines: OrderLine[] };
  actions?: ((line: OrderLine) => React.ReactNode) | undefined;
}) {
  return (
    <table className="lines">
      <thead>
        <tr>
          <th>Item</th>
          <th>Quantity</th>
          <th>Unit price</th>
          <th>Seller</th>
          <th>State</th>
          <th>Tracking</th>
          {actions ? <th>Actions</th> : null}
        </tr>
      </thead>
      <tbody>
        {order.lines.map((l) => (
          <tr key={l.id}>
            <td>
              <span className="with-thumb">
                <Thumb src={l.thumb_url} alt={l.title} className="thumb-sm" />
                {l.title}
              </span>
            </td>
            <td>{l.quantity}</td>
            <td>
              <Money cents={l.unit_price_cents} currency={l.currency ?? order.currency} />
            </td>
            <td>{l.seller_username}</td>
            <td>
              <Status status={l.status} />
            </td>
            <td>{l.tracking_code ?? ''}</td>
            {actions ? <td>{actions(l)}</td> : null}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
