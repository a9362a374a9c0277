import { describe, expect, it } from 'vitest';
import { formatMoney, minorToDecimal, parsePrice } from './money';
import { formatBytes, isFinalJobStatus, statusLabel } from './format';

describe('parsePrice', () => {
  it.each([
    ['12.50', 1250],
    ['12.5', 1250],
    ['12', 1200],
    ['0.1', 10],
    ['.5', 50],
    ['19.99', 1999],
    ['1.13', 113],
    ['4.35', 435],
    ['0', 0],
    ['  7.00 ', 700],
    ['99999999.99', 9999999999],
  ])('%s → %i minor units', (input, minor) => {
    expect(parsePrice(input, 'usd')).toEqual({ ok: true, minor });
  });

  it('is exact where float multiplication is not', () => {
    // 4.35 * 100 === 434.99999999999994 and 1.13 * 100 === 112.99999999999999 in floating point.
    expect(4.35 * 100).not.toBe(435);
    expect(parsePrice('4.35')).toEqual({ ok: true, minor: 435 });
  });

  it.each(['', '.', 'abc', '1,50', '-1', '1e3', '12.345', '1.2.3'])('refuses %j', (input) => {
    expect(parsePrice(input, 'usd').ok).toBe(false);
  });

  it('follows the currency minor unit', () => {
    expect(parsePrice('500', 'jpy')).toEqual({ ok: true, minor: 500 });
    expect(parsePrice('5.5', 'jpy').ok).toBe(false);
    expect(parsePrice('1.234', 'kwd')).toEqual({ ok: true, minor: 1234 });
  });
});

describe('formatMoney', () => {
  it('formats minor units with the currency', () => {
    expect(formatMoney(1250, 'usd', 'en-US')).toBe('$12.50');
    expect(formatMoney(5, 'usd', 'en-US')).toBe('$0.05');
    expect(formatMoney(1999, 'eur', 'en-US')).toBe('€19.99');
    expect(formatMoney(500, 'jpy', 'en-US')).toBe('¥500');
    expect(formatMoney(null, 'usd', 'en-US')).toBe('—');
  });
  it('keeps large amounts exact', () => {
    expect(minorToDecimal(9007199254740991, 2)).toBe('90071992547409.91');
    expect(minorToDecimal(-5, 2)).toBe('-0.05');
  });
});

describe('statusLabel', () => {
  it('turns codes into words', () => {
    expect(statusLabel('pending_payment')).toBe('pending payment');
    expect(statusLabel('needs_review')).toBe('needs review');
    expect(statusLabel('paid')).toBe('paid');
    expect(statusLabel(null)).toBe('unknown');
  });
  it('knows the final job states', () => {
    expect(isFinalJobStatus('succeeded')).toBe(true);
    expect(isFinalJobStatus('failed')).toBe(true);
    expect(isFinalJobStatus('running')).toBe(false);
    expect(isFinalJobStatus('queued')).toBe(false);
  });
});

describe('formatBytes', () => {
  it('says how large a file is', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KB');
    expect(formatBytes(200 * 1024)).toBe('200 KB');
    expect(formatBytes(5 * 1024 * 1024)).toBe('5.0 MB');
    expect(formatBytes(Number.NaN)).toBe('');
  });
});
