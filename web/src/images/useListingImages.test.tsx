import { act, renderHook } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Image } from '../api/types';
import { deferred, envelope, json, type Deferred } from '../test/util';
import { useListingImages } from './useListingImages';

const LISTING = '01a23364-88c8-7628-ac52-817403139b66';
const IMAGES = `http://localhost:3000/api/v1/listings/${LISTING}/images`;

function image(id: string, status: Image['status'], is_main = false): Image {
  const ready = status === 'ready';
  return {
    id,
    status,
    is_main,
    url: ready ? `/api/v1/media/${id}/large.webp` : null,
    thumb_url: ready ? `/api/v1/media/${id}/thumb.webp` : null,
    width: ready ? 800 : null,
    height: ready ? 600 : null,
  };
}

/** The requests the hook sends, each answered by the test. */
function server() {
  const calls: { method: string; url: string; body: Promise<string>; answer: Deferred<Response> }[] = [];
  const fetch = vi.fn((req: Request) => {
    const answer = deferred<Response>();
    calls.push({ method: req.method, url: req.url, body: req.text(), answer });
    return answer.promise;
  });
  vi.stubGlobal('fetch', fetch);
  return { fetch, calls };
}

async function tick(ms: number) {
  await act(async () => {
    await vi.advanceTimersByTimeAsync(ms);
  });
}

/** Waits (on the fake clock) until `n` requests have gone out: the token is read before each. */
async function sent(s: ReturnType<typeof server>, n: number) {
  for (let i = 0; i < 20 && s.calls.length < n; i++) await tick(0);
  expect(s.calls).toHaveLength(n);
}

async function answer(d: Deferred<Response> | undefined, res: Response) {
  await act(async () => {
    d?.resolve(res);
    await vi.advanceTimersByTimeAsync(0);
  });
}

describe('useListingImages', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('polls every interval while an image is pending and stops when none is', async () => {
    const s = server();
    const { result } = renderHook(() =>
      useListingImages(LISTING, [image('a', 'ready', true), image('b', 'pending')], { intervalMs: 1000, maxTries: 10 }),
    );
    expect(result.current.processing).toBe(true);
    await tick(999);
    expect(s.fetch).not.toHaveBeenCalled();
    await tick(1);
    expect(s.calls).toHaveLength(1);
    expect(s.calls[0]?.url).toBe(IMAGES);
    await answer(s.calls[0]?.answer, json(200, { images: [image('a', 'ready', true), image('b', 'pending')] }));
    expect(result.current.processing).toBe(true);

    await tick(1000);
    expect(s.calls).toHaveLength(2);
    await answer(s.calls[1]?.answer, json(200, { images: [image('a', 'ready', true), image('b', 'ready')] }));
    expect(result.current.processing).toBe(false);
    expect(result.current.stalled).toBe(false);
    expect(result.current.images.map((i) => i.status)).toEqual(['ready', 'ready']);

    await tick(10_000);
    expect(s.calls).toHaveLength(2);
  });

  it('does not poll when nothing is pending', async () => {
    const s = server();
    const { result } = renderHook(() => useListingImages(LISTING, [image('a', 'ready', true), image('f', 'failed')]));
    await tick(5000);
    expect(s.fetch).not.toHaveBeenCalled();
    expect(result.current.processing).toBe(false);
  });

  it('gives up after a bounded number of tries (errors included), and polls again on retry', async () => {
    const s = server();
    const { result } = renderHook(() => useListingImages(LISTING, [image('b', 'pending')], { intervalMs: 1000, maxTries: 3 }));
    for (let i = 0; i < 3; i++) {
      await tick(1000);
      expect(s.calls).toHaveLength(i + 1);
      const res = i === 1 ? envelope(503, 'unavailable', 'try again') : json(200, { images: [image('b', 'pending')] });
      await answer(s.calls[i]?.answer, res);
    }
    expect(result.current.stalled).toBe(true);
    expect(result.current.processing).toBe(false);
    await tick(10_000);
    expect(s.calls).toHaveLength(3);

    act(() => result.current.retry());
    expect(result.current.stalled).toBe(false);
    expect(result.current.processing).toBe(true);
    await tick(1000);
    expect(s.calls).toHaveLength(4);
    await answer(s.calls[3]?.answer, json(200, { images: [image('b', 'failed')] }));
    expect(result.current.processing).toBe(false);
    expect(result.current.stalled).toBe(false);
  });

  it('ignores a poll answer sent before a change the seller made', async () => {
    const s = server();
    const { result } = renderHook(() =>
      useListingImages(LISTING, [image('a', 'ready', true), image('b', 'ready'), image('p', 'pending')], { intervalMs: 1000 }),
    );
    await tick(1000);
    expect(s.calls).toHaveLength(1);
    // The seller makes b the main image while the poll is on its way.
    let done!: Promise<void>;
    act(() => {
      done = result.current.makeMain('b');
    });
    await sent(s, 2);
    const put = s.calls[1];
    expect(put?.method).toBe('PUT');
    expect(put?.url).toBe(`${IMAGES}/order`);
    expect(JSON.parse((await put?.body) ?? '')).toEqual({ image_ids: ['b', 'a', 'p'] });
    await answer(put?.answer, json(200, { images: [image('b', 'ready', true), image('a', 'ready'), image('p', 'pending')] }));
    await act(() => done);
    // The poll answers with the order from before.
    await answer(s.calls[0]?.answer, json(200, { images: [image('a', 'ready', true), image('b', 'ready'), image('p', 'pending')] }));
    expect(result.current.images.map((i) => i.id)).toEqual(['b', 'a', 'p']);
    expect(result.current.images[0]?.is_main).toBe(true);
    // Polling goes on with the next tick.
    await tick(1000);
    expect(s.calls).toHaveLength(3);
  });

  it('uploads the files as multipart parts named files and starts polling the new ones', async () => {
    const s = server();
    const { result } = renderHook(() => useListingImages(LISTING, [], { intervalMs: 1000 }));
    let done!: Promise<void>;
    act(() => {
      done = result.current.upload([new File(['one'], 'one.png', { type: 'image/png' }), new File(['two'], 'two.webp')]);
    });
    await sent(s, 1);
    const post = s.calls[0];
    expect(post?.method).toBe('POST');
    expect(post?.url).toBe(IMAGES);
    const body = (await post?.body) ?? '';
    expect(body.match(/name="files"/g)).toHaveLength(2);
    expect(body).toContain('one');
    expect(body).toContain('two');
    await answer(post?.answer, json(201, { images: [image('n1', 'pending'), image('n2', 'pending')] }));
    await act(() => done);
    expect(result.current.processing).toBe(true);
    await tick(1000);
    await sent(s, 2);
    expect(s.calls[1]?.url).toBe(IMAGES);
  });

  it('deletes an image and takes the server\'s list (with its new main image)', async () => {
    const s = server();
    const { result } = renderHook(() => useListingImages(LISTING, [image('a', 'ready', true), image('b', 'ready')]));
    let done!: Promise<void>;
    act(() => {
      done = result.current.remove('a');
    });
    await sent(s, 1);
    expect(s.calls[0]?.method).toBe('DELETE');
    expect(s.calls[0]?.url).toBe(`${IMAGES}/a`);
    await answer(s.calls[0]?.answer, new Response(null, { status: 204 }));
    expect(result.current.images.map((i) => i.id)).toEqual(['b']);
    await sent(s, 2);
    expect(s.calls[1]?.method).toBe('GET');
    await answer(s.calls[1]?.answer, json(200, { images: [image('b', 'ready', true)] }));
    await act(() => done);
    expect(result.current.images[0]?.is_main).toBe(true);
  });

  it('lets a refused upload reach the caller as the server\'s error', async () => {
    const s = server();
    const { result } = renderHook(() => useListingImages(LISTING, []));
    let outcome!: Promise<unknown>;
    act(() => {
      outcome = result.current.upload([new File(['hello'], 'photo.jpg', { type: 'image/jpeg' })]).then(
        () => null,
        (e: unknown) => e,
      );
    });
    await sent(s, 1);
    await answer(
      s.calls[0]?.answer,
      envelope(422, 'image_unsupported_format', 'file 0: the file is not a JPEG, PNG or WebP image', { file: 0 }),
    );
    await expect(outcome).resolves.toMatchObject({ status: 422, code: 'image_unsupported_format', details: { file: 0 } });
    expect(result.current.images).toEqual([]);
  });
});
