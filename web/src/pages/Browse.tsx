import { useState, type FormEvent } from 'react';
import { Link, useSearchParams } from 'react-router';
import { api, unwrap } from '../api/client';
import type { ListingSort } from '../api/types';
import { ErrorAlert, Loading, Money, Thumb } from '../components/ui';
import { useAsync } from '../lib/useAsync';

const SORTS: { value: string; label: string }[] = [
  { value: '-created_at', label: 'Newest first' },
  { value: 'created_at', label: 'Oldest first' },
  { value: 'price', label: 'Price: low to high' },
  { value: '-price', label: 'Price: high to low' },
];
const PAGE = 20;

export function Browse() {
  const [params, setParams] = useSearchParams();
  const q = params.get('q') ?? '';
  const sort = params.get('sort') ?? '-created_at';
  const [draft, setDraft] = useState(q);
  // Cursors of the pages before this one ('' = first page); reset when the search changes.
  const [pages, setPages] = useState<{ key: string; cursors: string[] }>({ key: '', cursors: [''] });
  const key = `${q}|${sort}`;
  const cursors = pages.key === key ? pages.cursors : [''];
  const cursor = cursors[cursors.length - 1] ?? '';

  const list = useAsync(
    (signal) =>
      unwrap(
        api.GET('/api/v1/listings', {
          params: {
            query: {
              q: q || undefined,
              sort: sort as ListingSort,
              limit: PAGE,
              cursor: cursor || undefined,
            },
          },
          signal,
        }),
      ),
    [q, sort, cursor],
  );

  function search(e: FormEvent) {
    e.preventDefault();
    const next = new URLSearchParams(params);
    if (draft.trim()) next.set('q', draft.trim());
    else next.delete('q');
    setParams(next);
  }

  function setSort(value: string) {
    const next = new URLSearchParams(params);
    next.set('sort', value);
    setParams(next);
  }

  const nextCursor = list.data?.next_cursor ?? null;
  return (
    <section>
      <h1>Listings</h1>
      <form className="toolbar" role="search" onSubmit={search}>
        <div className="field inline">
          <label htmlFor="search">Search</label>
          <input id="search" type="search" value={draft} onChange={(e) => setDraft(e.target.value)} />
        </div>
        <button type="submit">Search</button>
        <div className="field inline">
          <label htmlFor="sort">Sort</label>
          <select id="sort" value={sort} onChange={(e) => setSort(e.target.value)}>
            {SORTS.map((s) => (
              <option key={s.value} value={s.value}>
                {s.label}
              </option>
            ))}
          </select>
        </div>
      </form>
      <ErrorAlert error={list.error} />
      {list.loading && !list.data ? <Loading /> : null}
      {list.data && list.data.items.length === 0 ? <p className="muted">No listings found.</p> : null}
      <ul className="cards" aria-label="Listings" aria-busy={list.loading}>
        {list.data?.items.map((l) => (
          <li key={l.id} className="card">
            <Thumb src={l.main_image?.thumb_url} alt={l.title} className="card-thumb" />
            <h2>
              <Link to={`/listings/${l.id}`}>{l.title}</Link>
            </h2>
            <p className="price">
              <Money cents={l.price_cents} currency={l.currency} />
            </p>
            <p className="muted">
              {l.available > 0 ? `${l.available} available` : 'Sold out'} · by {l.seller.username}
              {l.is_active ? '' : ' · inactive'}
            </p>
          </li>
        ))}
      </ul>
      <div className="pager">
        <button type="button" disabled={cursors.length <= 1}
          onClick={() => setPages({ key, cursors: cursors.slice(0, -1) })}>
          Previous page
        </button>
        <button type="button" disabled={!nextCursor}
          onClick={() => nextCursor && setPages({ key, cursors: [...cursors, nextCursor] })}>
          Next page
        </button>
      </div>
    </section>
  );
}
