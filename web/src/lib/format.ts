/** A status or kind as words: `pending_payment` → `pending payment`. */
export function statusLabel(status: string | null | undefined): string {
  if (status === null || status === undefined || status === '') return 'unknown';
  return String(status).replace(/[_-]+/g, ' ').trim();
}

export function formatDate(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString();
}

/** Job statuses after which nothing changes. */
export function isFinalJobStatus(status: string | null | undefined): boolean {
  return status === 'succeeded' || status === 'failed';
}
