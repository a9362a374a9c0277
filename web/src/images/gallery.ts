import { ApiError } from '../api/errors';
import type { Image } from '../api/types';

export function isPending(image: Pick<Image, 'status'>): boolean {
  return image.status === 'pending';
}

/** The ids of the pending images, as one string: polling starts over when it changes. */
export function pendingKey(images: readonly Image[]): string {
  return images
    .filter(isPending)
    .map((i) => i.id)
    .join(',');
}

/** The images a visitor can look at, in gallery order. */
export function shownImages(images: readonly Image[]): (Image & { url: string })[] {
  return images.filter((i): i is Image & { url: string } => i.status === 'ready' && typeof i.url === 'string' && i.url !== '');
}

/** The gallery order that makes `id` the main image: it goes first, the others keep their order. */
export function mainFirst(ids: readonly string[], id: string): string[] {
  if (!ids.includes(id)) return [...ids];
  return [id, ...ids.filter((x) => x !== id)];
}

/** The gallery order with `id` moved `by` places (negative: towards the front), kept in bounds. */
export function moved(ids: readonly string[], id: string, by: number): string[] {
  const from = ids.indexOf(id);
  if (from < 0) return [...ids];
  const to = Math.min(ids.length - 1, Math.max(0, from + by));
  const next = ids.filter((x) => x !== id);
  next.splice(to, 0, id);
  return next;
}

export interface Refusal {
  /** The chosen file the server named (0-based, in upload order), if it named one. */
  file: number | null;
  text: string;
}

/**
 * Words for a refused upload. A bad file refuses the whole upload and the server names it by
 * its index: here it is named by its file name instead.
 */
export function refusal(err: unknown, names: readonly string[]): Refusal {
  if (!(err instanceof ApiError)) return { file: null, text: err instanceof Error ? err.message : String(err) };
  const index = err.details['file'];
  const name = typeof index === 'number' ? names[index] : undefined;
  if (typeof index !== 'number' || name === undefined) return { file: null, text: sentence(err.message) };
  const reason = err.message.replace(/^file \d+:\s*/, '');
  const rest = names.length > 1 ? ' Nothing was uploaded: remove it and upload the others again.' : '';
  return { file: index, text: `${name}: ${stop(reason)}${rest}` };
}

function stop(s: string): string {
  const t = s.trim();
  return t === '' || /[.!?]$/.test(t) ? t : `${t}.`;
}

function sentence(s: string): string {
  const t = stop(s);
  return t.charAt(0).toUpperCase() + t.slice(1);
}
