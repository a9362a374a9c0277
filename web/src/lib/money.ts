/** Minor-unit digits of a currency (2 for usd, 0 for jpy, 3 for kwd). */
export function currencyDigits(currency: string): number {
  try {
    const d = new Intl.NumberFormat('en', { style: 'currency', currency: currency.toUpperCase() }).resolvedOptions()
      .maximumFractionDigits;
    return typeof d === 'number' ? d : 2;
  } catch {
    return 2;
  }
}

/** The exact decimal string of an amount in minor units, e.g. (1250, 2) → "12.50". */
export function minorToDecimal(minor: number | bigint, digits: number): string {
  const big = BigInt(minor);
  const neg = big < 0n;
  const abs = (neg ? -big : big).toString().padStart(digits + 1, '0');
  const int = abs.slice(0, abs.length - digits);
  const frac = digits > 0 ? `.${abs.slice(abs.length - digits)}` : '';
  return `${neg ? '-' : ''}${int}${frac}`;
}

/** Money from minor units, with its currency, e.g. (1250, "usd") → "$12.50". */
export function formatMoney(minor: number | null | undefined, currency: string | null | undefined, locale?: string): string {
  const cur = (currency ?? 'usd').toUpperCase();
  if (minor === null || minor === undefined || !Number.isFinite(minor)) return '—';
  const digits = currencyDigits(cur);
  const decimal = minorToDecimal(Math.trunc(minor), digits);
  try {
    const nf = new Intl.NumberFormat(locale, { style: 'currency', currency: cur });
    // A decimal string keeps the amount exact (no float division).
    return nf.format(decimal as Intl.StringNumericLiteral);
  } catch {
    return `${decimal} ${cur}`;
  }
}

export type ParsedPrice = { ok: true; minor: number } | { ok: false; error: string };

/**
 * Parses a price typed in currency units ("12.50") into integer minor units (1250), from the
 * decimal string itself: never through floating-point multiplication.
 */
export function parsePrice(input: string, currency = 'usd'): ParsedPrice {
  const s = input.trim();
  const digits = currencyDigits(currency);
  const m = /^(\d*)(?:\.(\d*))?$/.exec(s);
  if (!m || s === '' || s === '.' || (m[1] === '' && (m[2] ?? '') === '')) {
    return { ok: false, error: 'Enter a price such as 12.50.' };
  }
  const int = m[1] ?? '';
  const frac = m[2] ?? '';
  if (frac.length > digits) {
    return {
      ok: false,
      error: digits === 0 ? 'This currency has no decimal places.' : `Use at most ${digits} decimal places.`,
    };
  }
  const minorStr = (int + frac.padEnd(digits, '0')).replace(/^0+(?=\d)/, '');
  const big = BigInt(minorStr === '' ? '0' : minorStr);
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, error: 'That price is too large.' };
  return { ok: true, minor: Number(big) };
}

/** The form value for an amount in minor units: (1250, "usd") → "12.50". */
export function priceInput(minor: number, currency = 'usd'): string {
  return minorToDecimal(minor, currencyDigits(currency));
}
