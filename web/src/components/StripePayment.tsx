import { useEffect, useRef, useState, type FormEvent } from 'react';
import { ErrorAlert } from './ui';

// The few parts of Stripe.js used here (https://js.stripe.com/v3).
interface StripeElement {
  mount(el: HTMLElement): void;
  destroy(): void;
}
interface StripeElements {
  create(kind: 'payment'): StripeElement;
}
interface StripeInstance {
  elements(options: { clientSecret: string }): StripeElements;
  confirmPayment(options: {
    elements: StripeElements;
    redirect: 'if_required';
    confirmParams?: { return_url?: string };
  }): Promise<{ error?: { message?: string } }>;
}
type StripeFactory = (key: string) => StripeInstance;

let loading: Promise<StripeFactory> | null = null;

function loadStripe(): Promise<StripeFactory> {
  loading ??= new Promise<StripeFactory>((resolve, reject) => {
    const w = window as unknown as { Stripe?: StripeFactory };
    if (w.Stripe) return resolve(w.Stripe);
    const s = document.createElement('script');
    s.src = 'https://js.stripe.com/v3';
    s.async = true;
    s.onload = () => (w.Stripe ? resolve(w.Stripe) : reject(new Error('Stripe.js did not load.')));
    s.onerror = () => {
      loading = null;
      reject(new Error('Stripe.js could not be loaded.'));
    };
    document.head.appendChild(s);
  });
  return loading;
}

/** Stripe's Payment Element for a pending order's PaymentIntent. */
export default function StripePayment({ publishableKey, clientSecret, onPaid }: { publishableKey: string; clientSecret: string; onPaid: () => void }) {
  const host = useRef<HTMLDivElement>(null);
  const [ready, setReady] = useState<{ stripe: StripeInstance; elements: StripeElements } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    let element: StripeElement | null = null;
    let cancelled = false;
    loadStripe().then(
      (factory) => {
        if (cancelled || !host.current) return;
        const stripe = factory(publishableKey);
        const elements = stripe.elements({ clientSecret });
        element = elements.create('payment');
        element.mount(host.current);
        setReady({ stripe, elements });
      },
      (e: unknown) => setError(e),
    );
    return () => {
      cancelled = true;
      element?.destroy();
    };
  }, [publishableKey, clientSecret]);

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!ready) return;
    setBusy(true);
    setError(null);
    const result = await ready.stripe.confirmPayment({
      elements: ready.elements,
      redirect: 'if_required',
      confirmParams: { return_url: window.location.href },
    });
    setBusy(false);
    if (result.error) setError(new Error(result.error.message ?? 'The payment was not accepted.'));
    else onPaid();
  }

  return (
    <form onSubmit={(e) => void submit(e)}>
      <div ref={host} className="stripe-element" />
      <ErrorAlert error={error} />
      <button type="submit" disabled={!ready || busy}>Pay</button>
    </form>
  );
}
