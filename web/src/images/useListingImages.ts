import { useCallback, useEffect, useRef, useState } from 'react';
import { api, unwrap, unwrapVoid } from '../api/client';
import { multipart } from '../api/multipart';
import type { Image, paths } from '../api/types';
import { sleep } from '../lib/sleep';
import { isPending, mainFirst, moved, pendingKey } from './gallery';

type UploadBody = paths['/api/v1/listings/{id}/images']['post']['requestBody']['content']['multipart/form-data'];

export interface ImagePollOptions {
  /** Gap between two polls while an image is pending. */
  intervalMs?: number | undefined;
  /** Polls of one set of pending images before giving up. */
  maxTries?: number | undefined;
}

export interface ListingImages {
  /** All of the listing's images (the seller sees pending and failed ones), in gallery order. */
  images: Image[];
  /** True while some image is pending and the list is polled. */
  processing: boolean;
  /** Polling gave up with images still pending. */
  stalled: boolean;
  /** Polls again after giving up. */
  retry: () => void;
  upload: (files: readonly File[]) => Promise<void>;
  remove: (imageId: string) => Promise<void>;
  makeMain: (imageId: string) => Promise<void>;
  move: (imageId: string, by: number) => Promise<void>;
}

/**
 * A seller's view of a listing's images: the changes they make, and polling (bounded) while the
 * worker processes new uploads.
 */
export function useListingImages(listingId: string, initial: readonly Image[], options: ImagePollOptions = {}): ListingImages {
  const intervalMs = options.intervalMs ?? 1000;
  const maxTries = options.maxTries ?? 60;
  const [images, setImages] = useState<Image[]>(() => [...initial]);
  const [attempt, setAttempt] = useState(0);
  const [stalledAt, setStalledAt] = useState<string | null>(null);
  // Bumped by every change the seller makes: a poll answer sent before it is out of date.
  const version = useRef(0);
  const pending = pendingKey(images);
  const key = `${pending}#${attempt}`;

  useEffect(() => {
    if (!pending) return;
    const ctl = new AbortController();
    void (async () => {
      for (let tries = 0; tries < maxTries; tries++) {
        await sleep(intervalMs, ctl.signal);
        if (ctl.signal.aborted) return;
        const seen = version.current;
        let next: Image[];
        try {
          next = (
            await unwrap(api.GET('/api/v1/listings/{id}/images', { params: { path: { id: listingId } }, signal: ctl.signal }))
          ).images;
        } catch {
          if (ctl.signal.aborted) return;
          continue;
        }
        if (ctl.signal.aborted) return;
        if (version.current !== seen) continue;
        setImages(next);
        if (!next.some(isPending)) return;
      }
      if (!ctl.signal.aborted) setStalledAt(key);
    })();
    return () => ctl.abort();
  }, [listingId, pending, key, intervalMs, maxTries]);

  const replace = useCallback((next: Image[]) => {
    version.current += 1;
    setImages(next);
  }, []);

  const upload = useCallback(
    async (files: readonly File[]) => {
      const res = await unwrap(
        api.POST('/api/v1/listings/{id}/images', { params: { path: { id: listingId } }, ...multipart<UploadBody>({ files }) }),
      );
      replace(res.images);
    },
    [listingId, replace],
  );

  const reorder = useCallback(
    async (ids: string[]) => {
      const res = await unwrap(
        api.PUT('/api/v1/listings/{id}/images/order', { params: { path: { id: listingId } }, body: { image_ids: ids } }),
      );
      replace(res.images);
    },
    [listingId, replace],
  );

  const makeMain = useCallback(
    (imageId: string) => reorder(mainFirst(images.map((i) => i.id), imageId)),
    [images, reorder],
  );
  const move = useCallback(
    (imageId: string, by: number) => reorder(moved(images.map((i) => i.id), imageId, by)),
    [images, reorder],
  );

  const remove = useCallback(
    async (imageId: string) => {
      await unwrapVoid(
        api.DELETE('/api/v1/listings/{id}/images/{image_id}', { params: { path: { id: listingId, image_id: imageId } } }),
      );
      replace(images.filter((i) => i.id !== imageId));
      // Another image may have become the main one: the server says which.
      try {
        replace((await unwrap(api.GET('/api/v1/listings/{id}/images', { params: { path: { id: listingId } } }))).images);
      } catch {
        // The image is gone either way; the next change or visit shows the new main one.
      }
    },
    [images, listingId, replace],
  );

  const retry = useCallback(() => setAttempt((a) => a + 1), []);
  const stalled = pending !== '' && stalledAt === key;
  return { images, processing: pending !== '' && !stalled, stalled, retry, upload, remove, makeMain, move };
}
