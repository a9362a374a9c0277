import { useState, type FormEvent } from 'react';
import { ApiError } from '../api/errors';
import type { CreateListing } from '../api/types';
import { parsePrice, priceInput } from '../lib/money';
import { ErrorAlert, Field, TextArea } from './ui';

export interface ListingValues {
  title: string;
  description: string;
  price_cents: number;
  currency: NonNullable<CreateListing['currency']>;
  quantity: number;
}

interface Props {
  initial?: Partial<ListingValues> | undefined;
  submitLabel: string;
  onSubmit: (v: ListingValues) => Promise<void>;
}

/** Title, description, price (in currency units) and quantity of a listing. */
export function ListingForm({ initial, submitLabel, onSubmit }: Props) {
  const startCurrency = initial?.currency ?? 'usd';
  const [title, setTitle] = useState(initial?.title ?? '');
  const [description, setDescription] = useState(initial?.description ?? '');
  const [currency, setCurrency] = useState<string>(startCurrency);
  const [price, setPrice] = useState(initial?.price_cents !== undefined ? priceInput(initial.price_cents, startCurrency) : '');
  const [quantity, setQuantity] = useState(initial?.quantity !== undefined ? String(initial.quantity) : '1');
  const [local, setLocal] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    const problems: Record<string, string> = {};
    const cur = currency.trim().toLowerCase() || 'usd';
    const p = parsePrice(price, cur);
    if (!p.ok) problems['price_cents'] = p.error;
    const q = Number(quantity);
    if (!/^\d+$/.test(quantity.trim()) || !Number.isSafeInteger(q)) problems['quantity'] = 'Enter a whole number of units.';
    setLocal(problems);
    setError(null);
    if (Object.keys(problems).length > 0 || !p.ok) return;
    setBusy(true);
    try {
      await onSubmit({ title, description, price_cents: p.minor, currency: cur as ListingValues['currency'], quantity: q });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  const fields = { ...(error instanceof ApiError ? error.fields : {}), ...local };
  return (
    <form className="listing-form" onSubmit={(e) => void submit(e)} noValidate>
      <Field label="Title" value={title} onChange={(e) => setTitle(e.target.value)} error={fields['title']} required />
      <TextArea label="Description" value={description} rows={4} onChange={(e) => setDescription(e.target.value)}
        error={fields['description']} />
      <div className="row">
        <Field label="Price" inputMode="decimal" value={price} onChange={(e) => setPrice(e.target.value)}
          placeholder="12.50" hint="In currency units, e.g. 12.50" error={fields['price_cents']} required />
        <Field label="Currency" value={currency} onChange={(e) => setCurrency(e.target.value)} maxLength={3}
          size={4} error={fields['currency']} />
        <Field label="Quantity" type="number" min={0} step={1} inputMode="numeric" value={quantity}
          onChange={(e) => setQuantity(e.target.value)} error={fields['quantity']} required />
      </div>
      <ErrorAlert error={error} />
      <button type="submit" disabled={busy}>{submitLabel}</button>
    </form>
  );
}
