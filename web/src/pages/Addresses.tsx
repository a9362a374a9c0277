import { useEffect, useRef, useState, type FormEvent } from 'react';
import { api, unwrap, unwrapVoid } from '../api/client';
import { ApiError } from '../api/errors';
import type { Address, CreateAddress } from '../api/types';
import { ErrorAlert, Field, Loading, Status } from '../components/ui';
import { useJob } from '../jobs/useJob';
import { statusLabel } from '../lib/format';
import { useAsync } from '../lib/useAsync';

function JobWatch({ jobId, onDone }: { jobId: string; onDone: () => void }) {
  const { job, error, retry } = useJob(jobId, { onFinal: onDone });
  return (
    <span className="muted">
      {job ? ` (checking: ${statusLabel(job.status)})` : ' (checking…)'}
      {error ? (
        <>
          <ErrorAlert error={error} />
          <button type="button" onClick={retry}>Retry</button>
        </>
      ) : null}
    </span>
  );
}

function AddressItem({ a, jobId, onChange }: { a: Address; jobId: string | undefined; onChange: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  async function act(fn: () => Promise<unknown>) {
    setBusy(true);
    setError(null);
    try {
      await fn();
      onChange();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  const text = [a.line1, a.line2, a.city, a.region, a.postal_code, a.country].filter(Boolean).join(', ');
  return (
    <li className="address" aria-label={text}>
      <div className="grow">
        <div>{text}</div>
        <div>
          <Status status={a.status} />
          {a.status === 'pending' && jobId ? <JobWatch jobId={jobId} onDone={onChange} /> : null}
        </div>
        {a.formatted_address && a.formatted_address !== text ? (
          <div className="muted">Geocoder: {a.formatted_address}</div>
        ) : null}
        {a.error ? <div className="muted">{a.error}</div> : null}
      </div>
      <div className="actions">
        {a.status === 'needs_review' ? (
          <button type="button" disabled={busy}
            onClick={() => void act(() => unwrap(api.POST('/api/v1/addresses/{id}/confirm', { params: { path: { id: a.id } } })))}>
            Confirm match
          </button>
        ) : null}
        <button type="button" className="secondary" disabled={busy}
          onClick={() => void act(() => unwrapVoid(api.DELETE('/api/v1/addresses/{id}', { params: { path: { id: a.id } } })))}>
          Delete
        </button>
      </div>
      <ErrorAlert error={error} />
    </li>
  );
}

const EMPTY = { line1: '', line2: '', city: '', region: '', postal_code: '', country: '' };

export default function Addresses() {
  const list = useAsync((signal) => unwrap(api.GET('/api/v1/addresses', { signal })), []);
  const [jobs, setJobs] = useState<Record<string, string>>({});
  const [form, setForm] = useState(EMPTY);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const polls = useRef(0);

  // Addresses still pending whose job this page did not start: look again a few times.
  const unwatched = (list.data?.items ?? []).some((a) => a.status === 'pending' && !jobs[a.id]);
  const { reload, loading } = list;
  useEffect(() => {
    if (!unwatched || loading || polls.current >= 30) return;
    const t = setTimeout(() => {
      polls.current += 1;
      reload();
    }, 2000);
    return () => clearTimeout(t);
  }, [unwatched, loading, reload]);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = {
        line1: form.line1,
        city: form.city,
        postal_code: form.postal_code,
        // The server checks the code (a string, or an enum of ISO codes in the spec).
        country: form.country.trim().toUpperCase() as CreateAddress['country'],
        ...(form.line2.trim() ? { line2: form.line2 } : {}),
        ...(form.region.trim() ? { region: form.region } : {}),
      };
      const accepted = await unwrap(api.POST('/api/v1/addresses', { body }));
      setJobs((j) => ({ ...j, [accepted.address.id]: accepted.job_id }));
      setForm(EMPTY);
      list.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  const f = error instanceof ApiError ? error.fields : {};
  const set = (k: keyof typeof EMPTY) => (e: React.ChangeEvent<HTMLInputElement>) => setForm({ ...form, [k]: e.target.value });
  return (
    <section>
      <h1>Addresses</h1>
      <ErrorAlert error={list.error} />
      {list.loading && !list.data ? <Loading /> : null}
      {list.data && list.data.items.length === 0 ? <p className="muted">No addresses yet.</p> : null}
      <ul className="addresses" aria-label="My addresses">
        {list.data?.items.map((a) => (
          <AddressItem key={a.id} a={a} jobId={jobs[a.id]} onChange={list.reload} />
        ))}
      </ul>
      <h2>New address</h2>
      <form onSubmit={(e) => void submit(e)} noValidate>
        <Field label="Address line 1" autoComplete="address-line1" value={form.line1} onChange={set('line1')} error={f['line1']} required />
        <Field label="Address line 2 (optional)" autoComplete="address-line2" value={form.line2} onChange={set('line2')} error={f['line2']} />
        <div className="row">
          <Field label="City" autoComplete="address-level2" value={form.city} onChange={set('city')} error={f['city']} required />
          <Field label="Region" autoComplete="address-level1" value={form.region} onChange={set('region')} error={f['region']} />
        </div>
        <div className="row">
          <Field label="Postal code" autoComplete="postal-code" value={form.postal_code} onChange={set('postal_code')} error={f['postal_code']} required />
          <Field label="Country" autoComplete="country" value={form.country} onChange={set('country')} error={f['country']}
            hint="Two-letter code, e.g. US" required />
        </div>
        <ErrorAlert error={error} />
        <button type="submit" disabled={busy}>Add address</button>
      </form>
    </section>
  );
}
