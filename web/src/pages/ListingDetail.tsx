import { useState, type FormEvent } from 'react';
import { Link, useLocation, useNavigate, useParams } from 'react-router';
import { api, unwrap } from '../api/client';
import { loginPath, useAuth } from '../auth/AuthProvider';
import { Gallery } from '../components/Gallery';
import { ErrorAlert, Field, Loading, Money } from '../components/ui';
import { useAsync } from '../lib/useAsync';

export function ListingDetail() {
  const { id = '' } = useParams();
  const { session } = useAuth();
  const navigate = useNavigate();
  const location = useLocation();
  const listing = useAsync((signal) => unwrap(api.GET('/api/v1/listings/{id}', { params: { path: { id } }, signal })), [id, session?.user?.id]);
  const [qty, setQty] = useState('1');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [added, setAdded] = useState<number | null>(null);

  async function add(e: FormEvent) {
    e.preventDefault();
    if (!session) {
      navigate(loginPath(location));
      return;
    }
    const n = Number.parseInt(qty, 10);
    if (!Number.isInteger(n) || n < 1) {
      setError(new Error('Enter a quantity of at least 1.'));
      return;
    }
    setBusy(true);
    setError(null);
    setAdded(null);
    try {
      const cart = await unwrap(api.GET('/api/v1/cart'));
      const have = cart.items.find((i) => i.listing_id === id)?.quantity ?? 0;
      const next = await unwrap(
        api.PUT('/api/v1/cart/items/{listing_id}', { params: { path: { listing_id: id } }, body: { quantity: have + n } }),
      );
      setAdded(next.items.find((i) => i.listing_id === id)?.quantity ?? have + n);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  if (listing.error) return <ErrorAlert error={listing.error} />;
  const l = listing.data;
  if (!l) return <Loading />;
  const mine = session?.user?.id === l.seller.id;
  return (
    <section>
      <h1>{l.title}</h1>
      <Gallery key={l.id} images={l.images} title={l.title} />
      <p className="price">
        <Money cents={l.price_cents} currency={l.currency} />
      </p>
      {l.description ? <p className="description">{l.description}</p> : null}
      <p className="muted">
        Sold by {l.seller.username} · {l.available} available{l.is_active ? '' : ' · inactive'}
      </p>
      {mine ? (
        <p>
          <Link to={`/sell/${l.id}`}>Edit this listing</Link>
        </p>
      ) : (
        <form className="buy" onSubmit={(e) => void add(e)}>
          <Field label="Quantity" type="number" min={1} max={Math.max(1, l.available)} step={1} inputMode="numeric"
            value={qty} onChange={(e) => setQty(e.target.value)} />
          <button type="submit" disabled={busy}>Add to cart</button>
          <ErrorAlert error={error} />
          {added !== null ? (
            <p className="ok" role="status">
              Added. You now have {added} of these in your cart.
            </p>
          ) : null}
        </form>
      )}
    </section>
  );
}
