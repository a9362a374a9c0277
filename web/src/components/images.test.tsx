import { render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Image } from '../api/types';
import { envelope, json } from '../test/util';
import { Gallery } from './Gallery';
import { ImageManager } from './ImageManager';

const LISTING = '01a23364-88c8-7628-ac52-817403139b66';

function image(id: string, status: Image['status'], is_main = false, size: [number, number] = [800, 600]): Image {
  const ready = status === 'ready';
  return {
    id,
    status,
    is_main,
    url: ready ? `/api/v1/media/${id}/large.webp` : null,
    thumb_url: ready ? `/api/v1/media/${id}/thumb.webp` : null,
    width: ready ? size[0] : null,
    height: ready ? size[1] : null,
  };
}

describe('Gallery', () => {
  it('shows the main picture large with its size, and switches with the thumbnails', async () => {
    const user = userEvent.setup();
    render(<Gallery title="Lamp" images={[image('a', 'ready', true, [1024, 768]), image('p', 'pending'), image('b', 'ready', false, [600, 800])]} />);
    const large = screen.getByRole('img', { name: 'Lamp' });
    expect(large.getAttribute('src')).toBe('/api/v1/media/a/large.webp');
    expect(large.getAttribute('width')).toBe('1024');
    expect(large.getAttribute('height')).toBe('768');
    const picks = within(screen.getByRole('list', { name: 'Pictures' })).getAllByRole('button');
    expect(picks).toHaveLength(2);
    expect(picks[0]?.getAttribute('aria-pressed')).toBe('true');
    await user.click(screen.getByRole('button', { name: 'Show picture 2 of 2' }));
    expect(screen.getByRole('img', { name: 'Lamp' }).getAttribute('src')).toBe('/api/v1/media/b/large.webp');
    expect(screen.getByRole('img', { name: 'Lamp' }).getAttribute('height')).toBe('800');
    expect(picks[1]?.getAttribute('aria-pressed')).toBe('true');
  });

  it('has a placeholder and no thumbnails without ready pictures', () => {
    render(<Gallery title="Lamp" images={[image('p', 'pending')]} />);
    expect(screen.getByText('No pictures')).toBeTruthy();
    expect(screen.queryByRole('img')).toBeNull();
  });
});

describe('ImageManager', () => {
  let urls: string[];
  let revoked: string[];
  beforeEach(() => {
    urls = [];
    revoked = [];
    let n = 0;
    Object.defineProperty(URL, 'createObjectURL', {
      configurable: true,
      value: () => {
        n += 1;
        const u = `blob:preview-${n}`;
        urls.push(u);
        return u;
      },
    });
    Object.defineProperty(URL, 'revokeObjectURL', { configurable: true, value: (u: string) => revoked.push(u) });
  });
  afterEach(() => {
    Reflect.deleteProperty(URL, 'createObjectURL');
    Reflect.deleteProperty(URL, 'revokeObjectURL');
  });

  const png = () => new File([new Uint8Array([137, 80, 78, 71])], 'lamp.png', { type: 'image/png' });
  const text = () => new File(['not a picture'], 'photo.jpg', { type: 'image/jpeg' });

  it('previews chosen files, and revokes a preview when its file is removed', async () => {
    vi.stubGlobal('fetch', vi.fn());
    const user = userEvent.setup();
    render(<ImageManager listingId={LISTING} title="Lamp" initial={[]} />);
    expect(screen.getByText('No pictures yet.')).toBeTruthy();
    await user.upload(screen.getByLabelText('Add pictures'), [png(), text()]);
    const chosen = screen.getByRole('list', { name: 'Chosen files' });
    expect(within(chosen).getByRole('img', { name: 'Preview of lamp.png' }).getAttribute('src')).toBe('blob:preview-1');
    expect(within(chosen).getByRole('img', { name: 'Preview of photo.jpg' }).getAttribute('src')).toBe('blob:preview-2');
    expect(screen.getByRole('button', { name: 'Upload 2 pictures' })).toBeTruthy();
    await user.click(screen.getByRole('button', { name: 'Remove photo.jpg' }));
    expect(revoked).toEqual(['blob:preview-2']);
    expect(screen.getByRole('button', { name: 'Upload picture' })).toBeTruthy();
    expect(fetch).not.toHaveBeenCalled();
  });

  it('shows the refusal on the refused file and keeps the files chosen', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async () => envelope(422, 'image_unsupported_format', 'file 1: the file is not a JPEG, PNG or WebP image', { file: 1 })),
    );
    const user = userEvent.setup();
    render(<ImageManager listingId={LISTING} title="Lamp" initial={[]} />);
    await user.upload(screen.getByLabelText('Add pictures'), [png(), text()]);
    await user.click(screen.getByRole('button', { name: 'Upload 2 pictures' }));
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toBe(
      'photo.jpg: the file is not a JPEG, PNG or WebP image. Nothing was uploaded: remove it and upload the others again.',
    );
    const bad = screen.getByRole('listitem', { name: 'photo.jpg' });
    expect(bad.className).toContain('refused');
    expect(within(bad).getByText(/not a JPEG, PNG or WebP/)).toBeTruthy();
    expect(screen.getByRole('listitem', { name: 'lamp.png' }).className).not.toContain('refused');
    await user.click(screen.getByRole('button', { name: 'Remove photo.jpg' }));
    expect(screen.queryByRole('alert')).toBeNull();
    expect(revoked).toEqual(['blob:preview-2']);
  });

  it('uploads, shows the pictures as processing until they are ready, and revokes the previews', async () => {
    const answers = [
      json(201, { images: [image('a', 'ready', true), image('n', 'pending')] }),
      json(200, { images: [image('a', 'ready', true), image('n', 'ready')] }),
    ];
    const fetch = vi.fn(async () => answers.shift() ?? json(500, {}));
    vi.stubGlobal('fetch', fetch);
    const user = userEvent.setup();
    render(<ImageManager listingId={LISTING} title="Lamp" initial={[image('a', 'ready', true)]} />);
    await user.upload(screen.getByLabelText('Add pictures'), png());
    await user.click(screen.getByRole('button', { name: 'Upload picture' }));
    const second = await screen.findByRole('listitem', { name: 'Picture 2' });
    expect(within(second).getByText('processing')).toBeTruthy();
    expect(screen.getByRole('status').textContent).toBe('Processing 1 picture…');
    expect(screen.queryByRole('list', { name: 'Chosen files' })).toBeNull();
    expect(revoked).toEqual(['blob:preview-1']);
    // The poll a second later finds it ready.
    await waitFor(() => expect(within(screen.getByRole('listitem', { name: 'Picture 2' })).getByText('ready')).toBeTruthy(), {
      timeout: 3000,
    });
    expect(screen.getByRole('img', { name: 'Lamp, picture 2' }).getAttribute('src')).toBe('/api/v1/media/n/thumb.webp');
    expect(screen.queryByRole('status')).toBeNull();
    expect(fetch).toHaveBeenCalledTimes(2);
    // Only a ready picture that is not the main one can be made the main one.
    expect(screen.queryByRole('button', { name: 'Make picture 1 the main one' })).toBeNull();
    expect(screen.getByRole('button', { name: 'Make picture 2 the main one' })).toBeTruthy();
  });

  it('shows a refused change next to the pictures', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => envelope(403, 'not_owner', "only the seller can change this listing's images")));
    const user = userEvent.setup();
    render(<ImageManager listingId={LISTING} title="Lamp" initial={[image('a', 'ready', true), image('b', 'ready')]} />);
    await user.click(screen.getByRole('button', { name: 'Make picture 2 the main one' }));
    expect((await screen.findByRole('alert')).textContent).toBe("only the seller can change this listing's images");
    expect(screen.getByRole('button', { name: 'Move picture 1 left' }).hasAttribute('disabled')).toBe(true);
    expect(screen.getByRole('button', { name: 'Move picture 2 right' }).hasAttribute('disabled')).toBe(true);
  });
});
