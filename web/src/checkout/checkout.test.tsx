import { act, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { describe, expect, it, vi } from 'vitest';
import type { Cart } from '../api/types';
import { ErrorAlert } from '../components/ui';
import { deferred, envelope, json, type Deferred } from '../test/util';
import { CHECKOUT_KEY, cartFingerprint, checkoutKey, clearCheckout, pendingCheckout } from './idempotency';
import { useCheckout } from './useCheckout';

const ADDRESS = '01a23364-88c7-73b7-9cdb-55520b8a6674';

function cart(quantity = 2): Pick<Cart, 'items'> {
  return {
    items: [
      { listing_id: 'l1', title: 'Lamp', unit_price_cents: 1250, currency: 'usd', quantity, line_total_cents: 1250 * quantity, available: 5 },
    ],
  };
}

interface Call {
  method: string;
  path: string;
  key: string | null;
}

function server() {
  const calls: Call[] = [];
  const answers: Deferred<Response>[] = [];
  vi.stubGlobal(
    'fetch',
    vi.fn((req: Request) => {
      calls.push({ method: req.method, path: new URL(req.url).pathname, key: req.headers.get('Idempotency-Key') });
      const d = deferred<Response>();
      answers.push(d);
      return d.promise;
    }),
  );
  return {
    calls,
    posts: () => calls.filter((c) => c.method === 'POST'),
    async answer(i: number, res: Response) {
      await waitFor(() => expect(answers.length).toBeGreaterThan(i));
      await act(async () => {
        answers[i]?.resolve(res);
      });
    },
    /** Answers the latest request matching `pred`. */
    async answerLast(pred: (c: Call) => boolean, res: Response) {
      await waitFor(() => expect(calls.some(pred)).toBe(true));
      const i = calls.map(pred).lastIndexOf(true);
      await act(async () => {
        answers[i]?.resolve(res);
      });
    },
  };
}

function Checkout({ items, onOrder }: { items: Pick<Cart, 'items'>; onOrder: (id: string) => void }) {
  const c = useCheckout(onOrder, { minIntervalMs: 0 });
  return (
    <div>
      <button type="button" onClick={() => void c.start(items, ADDRESS)}>
        Checkout
      </button>
      <span data-testid="job">{c.jobId ?? 'none'}</span>
      <span data-testid="status">{c.job?.status ?? 'none'}</span>
      <ErrorAlert error={c.error} />
    </div>
  );
}

const jobBody = (status: string, result: unknown = null) => ({
  id: 'job-1',
  kind: 'checkout',
  status,
  attempts: 1,
  result,
  error: null,
  created_at: '2026-01-01T00:00:00Z',
  updated_at: '2026-01-01T00:00:00Z',
});

describe('checkout idempotency key', () => {
  it('is kept for the same cart and address, and renewed when either changes or it is cleared', () => {
    let n = 0;
    const make = () => `key-${++n}`;
    const fp = cartFingerprint(cart(2), ADDRESS);
    expect(checkoutKey(fp, sessionStorage, make)).toBe('key-1');
    expect(checkoutKey(fp, sessionStorage, make)).toBe('key-1');
    expect(checkoutKey(cartFingerprint(cart(3), ADDRESS), sessionStorage, make)).toBe('key-2');
    expect(checkoutKey(cartFingerprint(cart(3), 'other-address'), sessionStorage, make)).toBe('key-3');
    clearCheckout();
    expect(checkoutKey(cartFingerprint(cart(3), 'other-address'), sessionStorage, make)).toBe('key-4');
  });

  it('a double click sends one request; a reload resumes the same job; a final job forgets the key', async () => {
    const s = server();
    const onOrder = vi.fn();
    const first = render(<Checkout items={cart()} onOrder={onOrder} />);
    const button = screen.getByRole('button', { name: 'Checkout' });
    fireEvent.click(button);
    fireEvent.click(button);
    await waitFor(() => expect(s.posts()).toHaveLength(1));
    const key = s.posts()[0]?.key;
    expect(key).toBeTruthy();
    expect(pendingCheckout()?.key).toBe(key);

    // A third click while the first request is still out sends nothing either.
    fireEvent.click(button);
    await s.answer(0, json(202, { job_id: 'job-1', status_url: '/api/v1/jobs/job-1' }));
    expect(screen.getByTestId('job').textContent).toBe('job-1');
    expect(pendingCheckout()).toMatchObject({ key, job_id: 'job-1' });
    await waitFor(() => expect(s.calls.at(-1)?.path).toBe('/api/v1/jobs/job-1'));

    // Reload: the page comes back and follows the stored job without checking out again.
    first.unmount();
    render(<Checkout items={cart()} onOrder={onOrder} />);
    expect(screen.getByTestId('job').textContent).toBe('job-1');
    await waitFor(() => expect(s.calls.filter((c) => c.path === '/api/v1/jobs/job-1')).toHaveLength(2));
    expect(s.posts()).toHaveLength(1);

    // Clicking again before the job is final reuses the key, so the server answers with the same job.
    fireEvent.click(screen.getByRole('button', { name: 'Checkout' }));
    await waitFor(() => expect(s.posts()).toHaveLength(2));
    expect(s.posts()[1]?.key).toBe(key);

    await s.answerLast((c) => c.method === 'POST', json(202, { job_id: 'job-1', status_url: '/api/v1/jobs/job-1' }));
    await s.answerLast((c) => c.path === '/api/v1/jobs/job-1', json(200, jobBody('succeeded', { order_id: 'order-1', client_secret: 'cs' })));
    await waitFor(() => expect(onOrder).toHaveBeenCalledWith('order-1'));
    expect(sessionStorage.getItem(CHECKOUT_KEY)).toBeNull();

    // The next checkout is a new one.
    fireEvent.click(screen.getByRole('button', { name: 'Checkout' }));
    await waitFor(() => expect(s.posts()).toHaveLength(3));
    expect(s.posts()[2]?.key).not.toBe(key);
  });

  it('a reload while the request is out sends it again with the same key', async () => {
    const s = server();
    const first = render(<Checkout items={cart()} onOrder={vi.fn()} />);
    fireEvent.click(screen.getByRole('button', { name: 'Checkout' }));
    await waitFor(() => expect(s.posts()).toHaveLength(1));
    const key = s.posts()[0]?.key;
    first.unmount();

    render(<Checkout items={{ items: [] }} onOrder={vi.fn()} />);
    await waitFor(() => expect(s.posts()).toHaveLength(2));
    expect(s.posts()[1]?.key).toBe(key);
    await s.answerLast((c) => c.method === 'POST', json(202, { job_id: 'job-1', status_url: '/api/v1/jobs/job-1' }));
    expect(screen.getByTestId('job').textContent).toBe('job-1');
  });

  it('a changed cart gets a new key', async () => {
    const s = server();
    const view = render(<Checkout items={cart(2)} onOrder={vi.fn()} />);
    fireEvent.click(screen.getByRole('button', { name: 'Checkout' }));
    await waitFor(() => expect(s.posts()).toHaveLength(1));
    await s.answer(0, envelope(503, 'unavailable', 'try again'));
    expect(screen.getByRole('alert').textContent).toBe('try again');
    // A server failure keeps the key: the request may have been taken.
    const kept = s.posts()[0]?.key;
    expect(pendingCheckout()?.key).toBe(kept);

    view.rerender(<Checkout items={cart(3)} onOrder={vi.fn()} />);
    fireEvent.click(screen.getByRole('button', { name: 'Checkout' }));
    await waitFor(() => expect(s.posts()).toHaveLength(2));
    expect(s.posts()[1]?.key).not.toBe(kept);
  });

  it('shows a refusal next to the button and starts afresh after it', async () => {
    const s = server();
    render(<Checkout items={cart()} onOrder={vi.fn()} />);
    fireEvent.click(screen.getByRole('button', { name: 'Checkout' }));
    await s.answer(0, envelope(409, 'out_of_stock', 'Lamp: only 1 left'));
    expect(screen.getByRole('alert').textContent).toBe('Lamp: only 1 left');
    expect(pendingCheckout()).toBeNull();
  });

  it('follows the checkout already in progress', async () => {
    const s = server();
    render(<Checkout items={cart()} onOrder={vi.fn()} />);
    fireEvent.click(screen.getByRole('button', { name: 'Checkout' }));
    await s.answer(0, envelope(409, 'checkout_in_progress', 'another checkout is running', { job_id: 'job-9' }));
    expect(screen.getByTestId('job').textContent).toBe('job-9');
    await waitFor(() => expect(s.calls.at(-1)?.path).toBe('/api/v1/jobs/job-9'));
    await s.answer(1, json(200, { ...jobBody('failed'), id: 'job-9', error: { code: 'out_of_stock', message: 'sold out' } }));
    expect(screen.getByRole('alert').textContent).toBe('sold out');
    expect(pendingCheckout()).toBeNull();
  });
});
