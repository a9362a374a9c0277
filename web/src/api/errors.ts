import type { ErrorBody } from './types';

/** An error envelope from the api (or a stand-in for a failure that produced none). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: Record<string, unknown>;

  constructor(status: number, code: string, message: string, details: unknown = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = isRecord(details) ? details : {};
  }

  /** `details.fields` of a 422 `validation_failed`: field name → message. */
  get fields(): Record<string, string> {
    const f = this.details['fields'];
    if (!isRecord(f)) return {};
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(f)) out[k] = typeof v === 'string' ? v : String(v);
    return out;
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isEnvelope(v: unknown): v is ErrorBody {
  if (!isRecord(v)) return false;
  const e = v['error'];
  return isRecord(e) && typeof e['code'] === 'string' && typeof e['message'] === 'string';
}

/** Turns whatever came back from a failed call into an ApiError. */
export function toApiError(status: number, body: unknown): ApiError {
  if (isEnvelope(body)) {
    const e = body.error;
    return new ApiError(status, String(e.code), String(e.message), e.details);
  }
  if (status === 0) return new ApiError(0, 'network_error', 'The server could not be reached. Check your connection and try again.');
  return new ApiError(status, 'http_error', `The server answered with status ${status}.`);
}

/** Words for any thrown value, for showing next to what caused it. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
