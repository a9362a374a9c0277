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

/** A file size in words: 512 → "512 B", 2_400_000 → "2.3 MB". */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10 * 1024 ? 1 : 0)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}
