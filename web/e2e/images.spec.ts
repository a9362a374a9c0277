import { expect, test, type Locator } from '@playwright/test';
import { createListing, shot, signUp, unique } from './helpers';

import type { Schemas } from '../src/api/types';

// A 400×300 PNG in two colours (1-bit palette), so that the journey needs no fixture file.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAZAAAAEsAQMAAADXeXeBAAAABlBMVEUfX7/wtDyyt2u8AAAATUlEQVR42u3QsQ0AAAjDsP7/NFzQGSE5u5ckrWkFQRAEQRAEQRAEQRAEQRAEQRAEQRAEOSHGIAiCIAiCIAiCIAiCIAiCIAiCIAiCPCEL9mwwaJbHCiEAAAAASUVORK5CYII=',
  'base64',
);

/** Waits until an <img> shows a decoded file: a broken one, or one not fetched yet, has no natural width. */
async function expectLoaded(img: Locator): Promise<void> {
  await img.scrollIntoViewIfNeeded();
  await expect
    .poll(() => img.evaluate((el: HTMLImageElement) => (el.complete ? el.naturalWidth : 0)))
    .toBeGreaterThan(0);
}

test('a seller adds a picture: processed, it shows in the list, the gallery and a cart; a text file is refused', async ({
  page,
  browser,
}) => {
  await signUp(page, unique('photos'));
  const title = unique('Vase');
  await createListing(page, title, '8.00', 2);
  await page.getByRole('status').filter({ hasText: `Listed ${title}` }).getByRole('link', { name: 'Add pictures' }).click();
  await expect(page.getByRole('heading', { name: 'Edit listing' })).toBeVisible();
  await expect(page.getByText('No pictures yet.')).toBeVisible();

  const input = page.getByLabel('Add pictures');
  const chosen = page.getByRole('list', { name: 'Chosen files' });
  await input.setInputFiles({ name: 'vase.png', mimeType: 'image/png', buffer: PNG });
  await expectLoaded(chosen.getByRole('img', { name: 'Preview of vase.png' }));
  const uploaded = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/images'));
  await page.getByRole('button', { name: 'Upload picture' }).click();
  const answer = await uploaded;
  expect(answer.status()).toBe(201);
  expect(((await answer.json()) as Schemas['ImageList']).images.map((i) => i.status)).toEqual(['pending']);
  await expect(chosen).toHaveCount(0);

  // Shown as processing until the worker has made its renditions and a poll has seen them.
  const pictures = page.getByRole('list', { name: 'Pictures' });
  const first = pictures.getByRole('listitem', { name: 'Picture 1' });
  await expect(first.getByText('ready', { exact: true })).toBeVisible();
  await expect(first.getByText('main', { exact: true })).toBeVisible();
  await expect(page.getByRole('status').filter({ hasText: 'Processing' })).toHaveCount(0);
  await expectLoaded(first.getByRole('img', { name: `${title}, picture 1` }));
  await shot(page, 'listing-pictures');

  // Refused by its bytes, whatever its name says; nothing is added.
  await input.setInputFiles({ name: 'photo.jpg', mimeType: 'image/jpeg', buffer: Buffer.from('not the bytes of a picture\n') });
  await page.getByRole('button', { name: 'Upload picture' }).click();
  const refusal = page.getByRole('alert');
  await expect(refusal).toContainText('photo.jpg');
  await expect(refusal).toContainText('not a JPEG, PNG or WebP image');
  await expect(chosen.getByRole('listitem', { name: 'photo.jpg' })).toContainText('not a JPEG, PNG or WebP image');
  await expect(pictures.getByRole('listitem')).toHaveCount(1);
  await shot(page, 'picture-refused');

  // The browse list shows the thumbnail; the listing page shows the picture large, sized beforehand.
  await page.goto('/');
  await page.getByLabel('Search').fill(title);
  await page.getByRole('button', { name: 'Search' }).click();
  const card = page.getByRole('list', { name: 'Listings' }).getByRole('listitem').filter({ hasText: title });
  await expectLoaded(card.getByRole('img', { name: title }));
  await shot(page, 'browse-thumbnail');
  await card.getByRole('link', { name: title }).click();
  await expect(page.getByRole('heading', { name: title })).toBeVisible();
  const large = page.getByRole('img', { name: title });
  await expectLoaded(large);
  const size = await large.evaluate((el: HTMLImageElement) => ({
    width: Number(el.getAttribute('width')),
    height: Number(el.getAttribute('height')),
    ratio: el.naturalWidth / el.naturalHeight,
  }));
  expect(size.width).toBeGreaterThan(0);
  expect(size.height).toBeGreaterThan(0);
  expect(size.width / size.height).toBeCloseTo(size.ratio, 1);
  await shot(page, 'listing-gallery');

  // A buyer's cart shows it too.
  const buyer = await (await browser.newContext()).newPage();
  await signUp(buyer, unique('buyer'));
  await buyer.goto(page.url());
  await buyer.getByRole('button', { name: 'Add to cart' }).click();
  await expect(buyer.getByRole('status').filter({ hasText: 'in your cart' })).toBeVisible();
  await buyer.getByRole('link', { name: 'Cart' }).click();
  await expectLoaded(buyer.getByRole('listitem', { name: title }).getByRole('img', { name: title }));
  await shot(buyer, 'cart-thumbnail');
  await buyer.context().close();
});
