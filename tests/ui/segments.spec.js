// Segments: created on the page with the rule editor, listed per flag set,
// shown with the flags that use them.

const { test, expect } = require('@playwright/test');
const { ADMIN, unique, must, signInWithToken } = require('./helpers');

test('creates a segment, edits its rule, and lists the flags using it', async ({ page, request }) => {
  const set = `seg-${unique()}`;
  await must(request, 'POST', '/flag-sets', { key: set }, 201);
  await signInWithToken(page);
  await page.goto(`${ADMIN}/#/segments?flagSet=${set}`);
  await expect(page.getByText('No segments in this flag set yet.')).toBeVisible();
  await page.getByRole('button', { name: 'New segment' }).click();
  const dialog = page.getByRole('dialog', { name: 'New segment' });
  await dialog.getByLabel('Key').fill('beta-testers');
  await dialog.getByRole('button', { name: 'Continue' }).click();

  await expect(page.getByRole('heading', { level: 1, name: 'beta-testers' })).toBeVisible();
  await page.getByLabel('Description').fill('People who opted into betas');
  await page.getByRole('tab', { name: 'JsonLogic' }).click();
  await page.getByLabel('Condition (JsonLogic)').fill('{"in": [{"var": "email"}, ["ana@example.com"]]');
  await page.getByRole('button', { name: 'Create segment' }).click();
  // Not JSON: nothing is saved, the text stays.
  await expect(page.getByRole('alert')).toContainText('not valid JSON');
  await expect(page.locator('.rule-status .field-error')).toContainText('Not valid JSON');
  expect((await request.get(`${ADMIN}/api/v1/flag-sets/${set}/segments/beta-testers`, { headers: { Authorization: `Bearer ${process.env.ENSIGN_ADMIN_TOKEN}` } })).status()).toBe(404);

  await page.getByLabel('Condition (JsonLogic)').fill('{"in": [{"var": "email"}, ["ana@example.com", "li@example.com"]]}');
  await page.getByRole('button', { name: 'Create segment' }).click();
  await expect(page.getByRole('button', { name: 'Save segment' })).toBeVisible();
  const saved = await must(request, 'GET', `/flag-sets/${set}/segments/beta-testers`, undefined, 200);
  expect(saved).toMatchObject({ description: 'People who opted into betas', rule: { in: [{ var: 'email' }, ['ana@example.com', 'li@example.com']] } });

  // A flag that targets it is listed under "Used by", and deleting is refused.
  await must(request, 'POST', '/flags', {
    flagSet: set, key: 'beta-banner', variants: { on: true, off: false }, defaultVariant: 'off',
    targeting: { if: [{ $ref: 'beta-testers' }, 'on', 'off'] },
  }, 201);
  await page.reload();
  const usedBy = page.getByRole('region', { name: 'Used by' });
  await expect(usedBy.getByRole('link', { name: 'beta-banner' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Delete segment' })).toBeDisabled();

  await page.getByRole('navigation', { name: 'Breadcrumb' }).getByRole('link', { name: 'Segments' }).click();
  await expect(page.getByRole('link', { name: 'beta-testers' })).toBeVisible();
  await expect(page.getByRole('row', { name: /beta-testers/ })).toContainText('People who opted into betas');
});
