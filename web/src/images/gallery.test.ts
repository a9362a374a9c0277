import { describe, expect, it } from 'vitest';
import { ApiError } from '../api/errors';
import type { Image } from '../api/types';
import { mainFirst, moved, pendingKey, refusal, shownImages } from './gallery';

function image(id: string, status: Image['status'], extra: Partial<Image> = {}): Image {
  const ready = status === 'ready';
  return {
    id,
    status,
    is_main: false,
    url: ready ? `/api/v1/media/${id}/large.webp` : null,
    thumb_url: ready ? `/api/v1/media/${id}/thumb.webp` : null,
    width: ready ? 1024 : null,
    height: ready ? 768 : null,
    ...extra,
  };
}

describe('mainFirst', () => {
  it('puts the chosen image first and keeps the others in their order', () => {
    expect(mainFirst(['a', 'b', 'c', 'd'], 'c')).toEqual(['c', 'a', 'b', 'd']);
    expect(mainFirst(['a', 'b', 'c'], 'a')).toEqual(['a', 'b', 'c']);
    expect(mainFirst(['a', 'b', 'c'], 'c')).toEqual(['c', 'a', 'b']);
  });
  it('names every image exactly once, as the order endpoint requires', () => {
    const ids = ['a', 'b', 'c', 'd', 'e'];
    for (const id of ids) expect([...mainFirst(ids, id)].sort()).toEqual(ids);
  });
  it('leaves the order alone for an id that is not there', () => {
    expect(mainFirst(['a', 'b'], 'z')).toEqual(['a', 'b']);
  });
});

describe('moved', () => {
  it('moves one place either way', () => {
    expect(moved(['a', 'b', 'c'], 'b', -1)).toEqual(['b', 'a', 'c']);
    expect(moved(['a', 'b', 'c'], 'b', 1)).toEqual(['a', 'c', 'b']);
  });
  it('stays in bounds', () => {
    expect(moved(['a', 'b', 'c'], 'a', -1)).toEqual(['a', 'b', 'c']);
    expect(moved(['a', 'b', 'c'], 'c', 1)).toEqual(['a', 'b', 'c']);
    expect(moved(['a', 'b', 'c'], 'c', -10)).toEqual(['c', 'a', 'b']);
  });
  it('leaves the order alone for an id that is not there', () => {
    expect(moved(['a', 'b'], 'z', 1)).toEqual(['a', 'b']);
  });
});

describe('which images', () => {
  const list = [image('p1', 'pending'), image('r1', 'ready'), image('f1', 'failed'), image('p2', 'pending'), image('r2', 'ready')];
  it('keys the pending set', () => {
    expect(pendingKey(list)).toBe('p1,p2');
    expect(pendingKey([image('r1', 'ready')])).toBe('');
  });
  it('shows visitors the ready images that have a file, in order', () => {
    expect(shownImages(list).map((i) => i.id)).toEqual(['r1', 'r2']);
    expect(shownImages([image('r3', 'ready', { url: null })])).toEqual([]);
  });
});

describe('refusal', () => {
  it('names the refused file by its name', () => {
    const err = new ApiError(422, 'image_unsupported_format', 'file 1: the file is not a JPEG, PNG or WebP image', { file: 1 });
    expect(refusal(err, ['a.png', 'photo.jpg'])).toEqual({
      file: 1,
      text: 'photo.jpg: the file is not a JPEG, PNG or WebP image. Nothing was uploaded: remove it and upload the others again.',
    });
    expect(refusal(new ApiError(422, 'image_empty', 'file 0: the file is empty', { file: 0 }), ['x.webp'])).toEqual({
      file: 0,
      text: 'x.webp: the file is empty.',
    });
  });
  it('keeps the server\'s words when no file is named', () => {
    const err = new ApiError(409, 'too_many_images', 'a listing can have at most 10 images', { max_images: 10 });
    expect(refusal(err, ['a.png'])).toEqual({ file: null, text: 'A listing can have at most 10 images.' });
    expect(refusal(new ApiError(422, 'image_corrupt', 'bad', { file: 7 }), ['a.png']).file).toBeNull();
    expect(refusal(new Error('offline'), ['a.png'])).toEqual({ file: null, text: 'offline' });
  });
});
