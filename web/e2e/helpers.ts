import { expect, type APIRequestContext, type Page } from '@playwright/test';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const SHOTS = join(here, 'screenshots');
mkdirSync(SHOTS, { recursive: true });

const run = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
let n = 0;
/** A name no earlier run used. */
export function unique(prefix: string): string {
  n += 1;
  return `${prefix}_${run}_${n}`;
}

export const PASSWORD = 'correct horse battery';

export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

export async function signUp(page: Page, username: string): Promise<void> {
  await page.goto('/signup');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Email').fill(`${username}@example.com`);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign up' }).click();
  await expect(page.getByRole('button', { name: 'Log out' })).toBeVisible();
  await expect(page.getByTestId('whoami')).toHaveText(username);
}

export async function logIn(page: Page, username: string): Promise<void> {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByRole('button', { name: 'Log out' })).toBeVisible();
}

/** Creates a listing through the Sell page. */
export async function createListing(page: Page, title: string, price: string, quantity: number): Promise<void> {
  await page.getByRole('link', { name: 'Sell', exact: true }).click();
  await page.getByLabel('Title').fill(title);
  await page.getByLabel('Description').fill(`A fine ${title}.`);
  await page.getByLabel('Price', { exact: true }).fill(price);
  await page.getByLabel('Quantity').fill(String(quantity));
  await page.getByRole('button', { name: 'Create listing' }).click();
  await expect(page.getByRole('status').filter({ hasText: `Listed ${title}` })).toBeVisible();
}

/** Adds a (geocoded) address and waits for it to be verified. */
export async function addAddress(page: Page): Promise<void> {
  await page.getByRole('link', { name: 'Addresses' }).click();
  await page.getByLabel('Address line 1').fill('1 Main Street');
  await page.getByLabel('City').fill('Springfield');
  await page.getByLabel('Region').fill('IL');
  await page.getByLabel('Postal code').fill('62701');
  await page.getByLabel('Country').fill('US');
  await page.getByRole('button', { name: 'Add address' }).click();
  await expect(page.getByRole('list', { name: 'My addresses' }).getByText('verified', { exact: true }).first()).toBeVisible();
}

/** Finds a listing by searching, opens it and puts `quantity` in the cart. */
export async function addToCart(page: Page, title: string, quantity: number): Promise<void> {
  await page.goto('/');
  await page.getByLabel('Search').fill(title);
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('link', { name: title }).click();
  await expect(page.getByRole('heading', { name: title })).toBeVisible();
  await page.getByLabel('Quantity').fill(String(quantity));
  await page.getByRole('button', { name: 'Add to cart' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'in your cart' })).toBeVisible();
}

/** Checks the cart out and waits for the order page. */
export async function checkout(page: Page): Promise<string> {
  await page.getByRole('link', { name: 'Cart' }).click();
  await page.getByRole('button', { name: 'Checkout' }).click();
  await page.waitForURL(/\/orders\/[0-9a-f-]{36}$/);
  await expect(page.getByText('pending payment', { exact: true })).toBeVisible();
  return page.url().split('/').pop() ?? '';
}

export async function payTestMode(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Pay (test mode)' }).click();
  await expect(page.getByText('paid', { exact: true }).first()).toBeVisible();
}

export async function accessToken(page: Page): Promise<string> {
  const raw = await page.evaluate(() => window.localStorage.getItem('marketplace.session'));
  const s = JSON.parse(raw ?? '{}') as { access_token?: string };
  if (!s.access_token) throw new Error('not signed in');
  return s.access_token;
}

export async function apiGet<T>(request: APIRequestContext, token: string, path: string): Promise<T> {
  const res = await request.get(path, { headers: { Authorization: `Bearer ${token}` } });
  expect(res.status(), await res.text()).toBe(200);
  return (await res.json()) as T;
}
