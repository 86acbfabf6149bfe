// Signing in with an API token and with a user account, signing out, and a
// wrong secret that is refused on the page.

const { test, expect } = require('@playwright/test');
const { ADMIN, unique, must, signInWithToken } = require('./helpers');

test('signs in with an API token and out again; the session ends on the server', async ({ page }) => {
  await signInWithToken(page);
  await expect(page.getByRole('heading', { level: 1, name: 'Flags' })).toBeVisible();
  await expect(page.locator('.who-name')).toHaveText('token:bootstrap');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Sign in' })).toBeVisible();
  const session = await page.request.get(`${ADMIN}/api/v1/session`);
  expect(session.status()).toBe(401);
  // A page behind the sign-in goes back to it, remembering where it was going.
  await page.goto(`${ADMIN}/#/segments`);
  await expect(page.getByRole('heading', { level: 1, name: 'Sign in' })).toBeVisible();
  await expect.poll(() => page.url()).toContain('next=');
});

test('signs in with a user account and acts as that user', async ({ page, request }) => {
  const name = `ana-${unique()}`;
  await must(request, 'POST', '/users', { name, password: 'correct horse battery', role: 'editor', environments: null }, 201);
  await page.goto(`${ADMIN}/#/login`);
  await page.getByText('User account').click();
  await page.getByLabel('Username').fill(name);
  await page.getByLabel('Password').fill('wrong password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toContainText('Wrong username or password');
  await expect(page.getByLabel('Username')).toHaveValue(name);

  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.locator('.who-name')).toHaveText(`user:${name}`);
  await expect(page.locator('.who-role')).toHaveText('editor');
  // Editors see no token or user administration.
  await expect(page.getByRole('link', { name: 'API tokens' })).toHaveCount(0);
});

test('an unknown token is refused with a message next to the form', async ({ page }) => {
  await page.goto(`${ADMIN}/#/login`);
  await page.getByLabel('API token').fill('not-a-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toContainText('unknown or revoked');
  await expect(page.getByRole('heading', { level: 1, name: 'Sign in' })).toBeVisible();
});
