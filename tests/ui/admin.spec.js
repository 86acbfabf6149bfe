// Administration: a token is created with its secret shown once, works
// against the API, and is refused once revoked; a flag set is created.

const { test, expect } = require('@playwright/test');
const { ADMIN, unique, must, signInWithToken } = require('./helpers');

test('creates a token shown once, then revokes it after confirming', async ({ page, request }) => {
  const name = `ci-${unique()}`;
  await signInWithToken(page);
  await page.getByRole('link', { name: 'API tokens' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'API tokens' })).toBeVisible();
  await page.getByRole('button', { name: 'New token' }).click();
  const form = page.getByRole('dialog', { name: 'New API token' });
  await form.getByLabel('Name').fill(name);
  await form.getByLabel('Role').selectOption('viewer');
  await form.getByRole('button', { name: 'Create token' }).click();

  const shown = page.getByRole('dialog', { name: `Token ${name} created` });
  await expect(shown).toContainText('shown only this once');
  const secret = (await shown.locator('#token-secret').textContent()).trim();
  expect(secret.length).toBeGreaterThan(20);
  await expect(shown.getByRole('button', { name: 'Copy' })).toBeFocused();
  const works = await request.get(`${ADMIN}/api/v1/flags`, { headers: { Authorization: `Bearer ${secret}` } });
  expect(works.status()).toBe(200);
  await shown.getByRole('button', { name: 'Done' }).click();
  // Never shown again.
  await expect(page.getByText(secret)).toHaveCount(0);

  const row = page.locator('tr', { hasText: name });
  await expect(row).toContainText('Active');
  await row.getByRole('button', { name: `Revoke ${name}` }).click();
  const confirm = page.getByRole('dialog', { name: `Revoke token ${name}?` });
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  await expect(row).toContainText('Active');
  await row.getByRole('button', { name: `Revoke ${name}` }).click();
  await confirm.getByRole('button', { name: 'Revoke' }).click();
  await expect(row).toContainText('Revoked');
  const refused = await request.get(`${ADMIN}/api/v1/flags`, { headers: { Authorization: `Bearer ${secret}` } });
  expect(refused.status()).toBe(401);
});

test('creates a flag set; a bad key is explained next to its field', async ({ page, request }) => {
  const key = `payments-${unique()}`;
  await signInWithToken(page);
  await page.goto(`${ADMIN}/#/admin/flag-sets`);
  await page.getByRole('button', { name: 'New flag set' }).click();
  const dialog = page.getByRole('dialog', { name: 'New flag set' });
  await dialog.getByLabel('Key').fill('bad key with spaces');
  await dialog.getByLabel('Name').fill('Payments');
  await dialog.getByRole('button', { name: 'Create flag set' }).click();
  await expect(dialog.getByLabel('Key')).toHaveAttribute('aria-invalid', 'true');
  await expect(dialog.getByLabel('Name')).toHaveValue('Payments');
  await dialog.getByLabel('Key').fill(key);
  await dialog.getByLabel('Metadata (JSON object)').fill('{"team": "payments"}');
  await dialog.getByRole('button', { name: 'Create flag set' }).click();
  await expect(page.getByRole('link', { name: key })).toBeVisible();
  const set = await must(request, 'GET', `/flag-sets/${key}`, undefined, 200);
  expect(set).toMatchObject({ name: 'Payments', metadata: { team: 'payments' } });
});
