import { useId, type InputHTMLAttributes, type ReactNode, type TextareaHTMLAttributes } from 'react';
import { errorText } from '../api/errors';
import { formatMoney } from '../lib/money';
import { statusLabel } from '../lib/format';

/** An error in words, announced to screen readers. */
export function ErrorAlert({ error }: { error: unknown }) {
  if (error === null || error === undefined || error === false) return null;
  return (
    <p className="error" role="alert">
      {errorText(error)}
    </p>
  );
}

type FieldProps = { label: string; error?: string | undefined; hint?: string } & InputHTMLAttributes<HTMLInputElement>;

/** An input with a real <label> and its own error message. */
export function Field({ label, error, hint, id, ...rest }: FieldProps) {
  const auto = useId();
  const fid = id ?? auto;
  const hid = `${fid}-hint`;
  const eid = `${fid}-error`;
  const described = [hint ? hid : null, error ? eid : null].filter(Boolean).join(' ') || undefined;
  return (
    <div className="field">
      <label htmlFor={fid}>{label}</label>
      <input id={fid} aria-invalid={error ? true : undefined} aria-describedby={described} {...rest} />
      {hint ? (
        <small id={hid} className="hint">
          {hint}
        </small>
      ) : null}
      {error ? (
        <small id={eid} className="field-error" role="alert">
          {error}
        </small>
      ) : null}
    </div>
  );
}

type AreaProps = { label: string; error?: string | undefined } & TextareaHTMLAttributes<HTMLTextAreaElement>;

export function TextArea({ label, error, id, ...rest }: AreaProps) {
  const auto = useId();
  const fid = id ?? auto;
  return (
    <div className="field">
      <label htmlFor={fid}>{label}</label>
      <textarea id={fid} aria-invalid={error ? true : undefined} aria-describedby={error ? `${fid}-error` : undefined} {...rest} />
      {error ? (
        <small id={`${fid}-error`} className="field-error" role="alert">
          {error}
        </small>
      ) : null}
    </div>
  );
}

export function Money({ cents, currency }: { cents: number | null | undefined; currency: string | null | undefined }) {
  return <span className="money">{formatMoney(cents, currency)}</span>;
}

export function Status({ status }: { status: string | null | undefined }) {
  const s = String(status ?? 'unknown');
  return <span className={`status status-${s}`}>{statusLabel(s)}</span>;
}

export function Loading({ children = 'Loading…' }: { children?: ReactNode }) {
  return (
    <p className="muted" role="status">
      {children}
    </p>
  );
}

/**
 * A listing's thumbnail in a fixed box (the box is styled, so nothing moves when it loads), or a
 * neutral placeholder when it has none.
 */
export function Thumb({ src, alt, className }: { src: string | null | undefined; alt: string; className?: string | undefined }) {
  const cls = className ? `thumb ${className}` : 'thumb';
  if (!src) return <span className={`${cls} thumb-empty`} aria-hidden="true" />;
  return <img className={cls} src={src} alt={alt} loading="lazy" decoding="async" width={320} height={320} />;
}
