import { useCallback, useState, type FormEvent } from 'react';
import { Link, useNavigate } from 'react-router';
import { api, unwrap, unwrapVoid } from '../api/client';
import type { Cart, CartItem } from '../api/types';
import { useCheckout } from '../checkout/useCheckout';
import { ErrorAlert, Field, Loading, Money, Status, Thumb } from '../components/ui';
import { useAsync } from '../lib/useAsync';

function CartLine({ item, onCart, onRemoved }: { item: CartItem; onCart: (c: Cart) => void; onRemoved: () => void }) {
  const [qty, setQty] = useState(String(item.quantity));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  async function update(e: FormEvent) {
    e.preventDefault();
    const n = Number(qty);
    if (!/^\d+$/.test(qty.trim()) || n < 1) {
      setError(new Error('Enter a quantity of at least 1, or remove the line.'));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const cart = await unwrap(
        api.PUT('/api/v1/cart/items/{listing_id}', { params: { path: { listing_id: item.listing_id } }, body: { quantity: n } }),
      );
      onCart(cart);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  async function remove() {
    setBusy(true);
    setError(null);
    try {
      await unwrapVoid(api.DELETE('/api/v1/cart/items/{listing_id}', { params: { path: { listing_id: item.listing_id } } }));
      onRemoved();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  return (
    <li className="cart-line" aria-label={item.title}>
      <Thumb src={item.thumb_url} alt={item.title} />
      <div className="grow">
        <Link to={`/listings/${item.listing_id}`}>{item.title}</Link>
        <div className="muted">
          <Money cents={item.unit_price_cents} currency={item.currency} /> each · {item.available} available
        </div>
      </div>
      <form className="inline-form" onSubmit={(e) => void update(e)}>
        <Field label="Quantity" type="number" min={1} step={1} inputMode="numeric" value={qty}
          onChange={(e) => setQty(e.target.value)} />
        <button type="submit" disabled={busy}>Update</button>
        <button type="button" className="secondary" disabled={busy} onClick={() => void remove()}>
          Remove
        </button>
      </form>
      <div className="line-total">
        <Money cents={item.line_total_cents} currency={item.currency} />
      </div>
      <ErrorAlert error={error} />
    </li>
  );
}

export default function CartPage() {
  const navigate = useNavigate();
  const cart = useAsync((signal) => unwrap(api.GET('/api/v1/cart', { signal })), []);
  const addresses = useAsync((signal) => unwrap(api.GET('/api/v1/addresses', { signal })), []);
  const [addressId, setAddressId] = useState<string>('');
  const onOrder = useCallback((orderId: string) => navigate(`/orders/${orderId}`), [navigate]);
  const checkout = useCheckout(onOrder);

  const verified = (addresses.data?.items ?? []).filter((a) => a.status === 'verified');
  const chosen = addressId || verified[0]?.id || '';
  const items = cart.data?.items ?? [];
  const inProgress = checkout.starting || (checkout.jobId !== null && checkout.job?.status !== 'failed' && !checkout.error);

  function submit(e: FormEvent) {
    e.preventDefault();
    if (!cart.data || !chosen) return;
    void checkout.start(cart.data, chosen);
  }

  return (
    <section>
      <h1>Cart</h1>
      <ErrorAlert error={cart.error} />
      {cart.loading && !cart.data ? <Loading /> : null}
      {cart.data && items.length === 0 && !checkout.jobId ? <p className="muted">Your cart is empty.</p> : null}
      {items.length > 0 ? (
        <>
          <ul className="cart" aria-label="Cart lines">
            {items.map((i) => (
              <CartLine key={`${i.listing_id}:${i.quantity}`} item={i} onCart={cart.setData} onRemoved={cart.reload} />
            ))}
          </ul>
          <p className="total">
            Total: <Money cents={cart.data?.total_cents} currency={cart.data?.currency} />
          </p>
        </>
      ) : null}

      {items.length > 0 || checkout.jobId ? (
        <form className="checkout" onSubmit={submit} aria-label="Check out">
          <fieldset>
            <legend>Ship to</legend>
            <ErrorAlert error={addresses.error} />
            {addresses.data && verified.length === 0 ? (
              <p className="muted">
                You need a verified address first: <Link to="/addresses">add one</Link>.
              </p>
            ) : null}
            {verified.map((a) => (
              <label key={a.id} className="radio">
                <input type="radio" name="address" value={a.id} checked={chosen === a.id}
                  onChange={() => setAddressId(a.id)} />
                {a.formatted_address ?? [a.line1, a.city, a.postal_code, a.country].filter(Boolean).join(', ')}
              </label>
            ))}
          </fieldset>
          <button type="submit" disabled={inProgress || !chosen || items.length === 0}>Checkout</button>
          {checkout.jobId ? (
            <p role="status" className="progress">
              Checkout {checkout.job ? <Status status={checkout.job.status} /> : 'submitted'}
              {checkout.job?.status === 'succeeded' ? ': opening your order…' : inProgress ? '…' : ''}
            </p>
          ) : null}
          <ErrorAlert error={checkout.error} />
        </form>
      ) : null}
    </section>
  );
}
