import { useState } from 'react';
import { Link, useParams } from 'react-router';
import { api, unwrap } from '../api/client';
import { ImageManager } from '../components/ImageManager';
import { ListingForm } from '../components/ListingForm';
import { ErrorAlert, Loading } from '../components/ui';
import { useAsync } from '../lib/useAsync';

export default function EditListing() {
  const { id = '' } = useParams();
  const listing = useAsync((signal) => unwrap(api.GET('/api/v1/listings/{id}', { params: { path: { id } }, signal })), [id]);
  const [saved, setSaved] = useState(0);

  if (listing.error) return <ErrorAlert error={listing.error} />;
  const l = listing.data;
  if (!l) return <Loading />;
  return (
    <section>
      <h1>Edit listing</h1>
      <ListingForm
        key={`${l.id}-${saved}`}
        initial={{
          title: l.title,
          description: l.description ?? '',
          price_cents: l.price_cents,
          currency: l.currency,
          quantity: l.quantity,
        }}
        submitLabel="Save changes"
        onSubmit={async (v) => {
          const next = await unwrap(api.PATCH('/api/v1/listings/{id}', { params: { path: { id } }, body: v }));
          listing.setData(next);
          setSaved((s) => s + 1);
        }}
      />
      {saved > 0 ? (
        <p className="ok" role="status">
          Saved.
        </p>
      ) : null}
      <ImageManager key={l.id} listingId={l.id} title={l.title} initial={l.images} />
      <p>
        <Link to={`/listings/${l.id}`}>View the listing</Link> · <Link to="/sell">Back to my listings</Link>
      </p>
    </section>
  );
}
