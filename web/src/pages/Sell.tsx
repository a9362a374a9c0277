import { useState } from 'react';
import { Link } from 'react-router';
import { api, unwrap, unwrapVoid } from '../api/client';
import type { Listing } from '../api/types';
import { useAuth } from '../auth/AuthProvider';
import { ListingForm } from '../components/ListingForm';
import { ErrorAlert, Loading, Money, Thumb } from '../components/ui';
import { useAsync } from '../lib/useAsync';

function MyListing({ listing, onChange }: { listing: Listing; onChange: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  async function toggle() {
    setBusy(true);
    setError(null);
    try {
      if (listing.is_active) {
        await unwrapVoid(api.DELETE('/api/v1/listings/{id}', { params: { path: { id: listing.id } } }));
      } else {
        await unwrap(api.PATCH('/api/v1/listings/{id}', { params: { path: { id: listing.id } }, body: { is_active: true } }));
      }
      onChange();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  return (
    <tr>
      <td>
        <span className="with-thumb">
          <Thumb src={listing.main_image?.thumb_url} alt={listing.title} className="thumb-sm" />
          <Link to={`/listings/${listing.id}`}>{listing.title}</Link>
        </span>
      </td>
      <td>
        <Money cents={listing.price_cents} currency={listing.currency} />
      </td>
      <td>
        {listing.available} / {listing.quantity}
      </td>
      <td>{listing.is_active ? 'active' : 'inactive'}</td>
      <td className="actions">
        <Link to={`/sell/${listing.id}`} aria-label={`Edit ${listing.title}`}>Edit</Link>
        <button type="button" disabled={busy} onClick={() => void toggle()}>
          {listing.is_active ? 'Deactivate' : 'Reactivate'}
        </button>
        <ErrorAlert error={error} />
      </td>
    </tr>
  );
}

export default function Sell() {
  const { session } = useAuth();
  const username = session?.user?.username ?? '';
  const [formKey, setFormKey] = useState(0);
  const [created, setCreated] = useState<Listing | null>(null);
  const mine = useAsync(
    async (signal) =>
      username
        ? unwrap(api.GET('/api/v1/listings', { params: { query: { seller: username, limit: 100 } }, signal }))
        : { items: [], next_cursor: null },
    [username],
  );

  return (
    <section>
      <h1>Sell</h1>
      <h2>New listing</h2>
      <ListingForm
        key={formKey}
        submitLabel="Create listing"
        onSubmit={async (v) => {
          const l = await unwrap(api.POST('/api/v1/listings', { body: v }));
          setCreated(l);
          setFormKey((k) => k + 1);
          mine.reload();
        }}
      />
      {created ? (
        <p className="ok" role="status">
          Listed <Link to={`/listings/${created.id}`}>{created.title}</Link>.{' '}
          <Link to={`/sell/${created.id}`}>Add pictures</Link>
        </p>
      ) : null}
      <h2>My listings</h2>
      <ErrorAlert error={mine.error} />
      {mine.loading && !mine.data ? <Loading /> : null}
      {mine.data && mine.data.items.length === 0 ? <p className="muted">You have no listings yet.</p> : null}
      {mine.data && mine.data.items.length > 0 ? (
        <table>
          <thead>
            <tr>
              <th>Title</th>
              <th>Price</th>
              <th>Available / stock</th>
              <th>State</th>
              <th>Actions</th>
            </tr>
          </thead>
          <tbody>
            {mine.data.items.map((l) => (
              <MyListing key={l.id} listing={l} onChange={mine.reload} />
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}
