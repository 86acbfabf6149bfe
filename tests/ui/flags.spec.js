// The flags list and the "New flag" form: filters served by the API one page
// at a time, state per environment, badges, and a failed creation that keeps
// the input and shows the error next to its field.

const { test, expect } = require('@playwright/test');
const { ADMIN, unique, must, signInWithToken } = require('./helpers');

const DAY = 24 * 3600 * 1000;
const suffix = unique();
const SET = `list-${suffix}`;

test.beforeAll(async ({ request }) => {
  await must(request, 'POST', '/flag-sets', { key: SET, name: `List ${suffix}` }, 201);
  const flag = (key, extra = {}) => must(request, 'POST', '/flags', {
    flagSet: SET, key, variants: { on: true, off: false }, defaultVariant: 'off', ...extra,
  }, 201);
  await flag('checkout-redesign', { owner: 'team-checkout', tags: ['web', 'checkout'], description: 'The new checkout flow' });
  await flag('search-ranking', { kind: 'experiment', owner: 'team-search', tags: ['web'] });
  await flag('legacy-cart', { kind: 'operational', owner: 'team-checkout', expiresAt: Date.now() - DAY });
  for (let n = 1; n <= 27; n += 1) await flag(`bulk-${String(n).padStart(2, '0')}`, { owner: 'team-bulk' });
  await must(request, 'POST', `/flags/${SET}/checkout-redesign/environments/staging/toggle`, { enabled: true }, 200);
  await must(request, 'PATCH', `/flags/${SET}/search-ranking`, { stage: 'stale' }, 200);
});

/** The keys of the rows shown, in order. */
const keys = (page) => page.locator('.flags-table tbody a.key').allTextContents();

test('filters by flag set, search, kind, owner, tag, stage and state; pages on the server', async ({ page }) => {
  await signInWithToken(page);
  await page.goto(`${ADMIN}/#/flags?flagSet=${SET}&limit=25`);
  await expect(page.getByText(`1–25 of 30 flags`)).toBeVisible();
  await page.getByRole('button', { name: 'Next' }).click();
  await expect(page.getByText(`26–30 of 30 flags`)).toBeVisible();
  expect(await keys(page)).toEqual(['bulk-26', 'bulk-27', 'checkout-redesign', 'legacy-cart', 'search-ranking']);

  // Staging on, the others off; stale and expired badges.
  const row = page.locator('tr', { has: page.getByRole('link', { name: 'checkout-redesign' }) });
  await expect(row.locator('td.center')).toHaveText(['Off', 'On', 'Off']);
  await expect(page.locator('tr', { has: page.getByRole('link', { name: 'search-ranking' }) }).getByText('Stale')).toBeVisible();
  await expect(page.locator('tr', { has: page.getByRole('link', { name: 'legacy-cart' }) }).getByText('Expired')).toBeVisible();

  await page.keyboard.press('/');
  await expect(page.getByLabel('Search')).toBeFocused();
  await page.getByLabel('Search').fill('checkout');
  await expect.poll(() => keys(page)).toEqual(['checkout-redesign']);
  await expect.poll(() => page.url()).toContain('q=checkout');
  await page.getByLabel('Search').fill('');
  await page.getByLabel('Kind').selectOption('experiment');
  await expect.poll(() => keys(page)).toEqual(['search-ranking']);
  await page.getByLabel('Kind').selectOption('');
  await page.getByLabel('Owner').fill('team-checkout');
  await expect.poll(() => keys(page)).toEqual(['checkout-redesign', 'legacy-cart']);
  await page.getByLabel('Tag', { exact: true }).fill('checkout');
  await expect.poll(() => keys(page)).toEqual(['checkout-redesign']);
  await page.getByLabel('Tag', { exact: true }).fill('');
  await page.getByLabel('Owner').fill('');
  await page.getByLabel('Stage').selectOption('stale');
  await expect.poll(() => keys(page)).toEqual(['search-ranking']);
  await page.getByLabel('Stage').selectOption('');
  await page.getByLabel('Environment').selectOption('staging');
  await page.getByLabel('State').selectOption('ENABLED');
  await expect.poll(() => keys(page)).toEqual(['checkout-redesign']);
  // One environment chosen: one state column.
  await expect(page.locator('.flags-table thead th')).toHaveText(['Flag', 'Stage', 'Staging', 'Owner', 'Last evaluated']);

  // The filters are in the URL: a reload shows the same list.
  await page.reload();
  await expect(page.getByLabel('State')).toHaveValue('ENABLED');
  await expect.poll(() => keys(page)).toEqual(['checkout-redesign']);
});

test('creates a flag with the form; a refused key keeps the input and is explained next to the field', async ({ page, request }) => {
  await signInWithToken(page);
  await page.goto(`${ADMIN}/#/flags?flagSet=${SET}`);
  await page.getByRole('button', { name: 'New flag' }).click();
  const dialog = page.getByRole('dialog', { name: 'New flag' });
  await dialog.getByLabel('Key').fill('checkout-redesign');
  await dialog.getByLabel('Type').selectOption('string');
  await dialog.getByLabel('Variant 1 value').fill('blue');
  await dialog.getByLabel('Variant 2 value').fill('green');
  await dialog.getByLabel('Default variant').selectOption('treatment');
  await dialog.getByLabel('Owner').fill('team-growth');
  await dialog.getByLabel('Tags').fill('web, colour');
  await dialog.getByLabel('Description').fill('Button colour test');
  await dialog.getByRole('button', { name: 'Create flag' }).click();
  // The key exists already: the dialog stays, with everything typed.
  await expect(dialog.getByRole('alert')).toContainText(/exists/i);
  await expect(dialog.getByLabel('Owner')).toHaveValue('team-growth');
  await expect(dialog.getByLabel('Variant 2 value')).toHaveValue('green');

  // A value the API refuses: its problem shows next to the field.
  await dialog.getByLabel('Key').fill(`x${'y'.repeat(300)}`);
  await dialog.getByRole('button', { name: 'Create flag' }).click();
  await expect(dialog.locator('.field[data-pointer="/key"] .field-error')).toContainText('256');
  await expect(dialog.getByLabel('Key')).toHaveAttribute('aria-invalid', 'true');

  await dialog.getByLabel('Key').fill('button-colour');
  await dialog.getByRole('button', { name: 'Create flag' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'button-colour' })).toBeVisible();
  await expect.poll(() => page.url()).toContain(`#/flags/${SET}/button-colour`);
  const flag = await must(request, 'GET', `/flags/${SET}/button-colour`, undefined, 200);
  expect(flag).toMatchObject({
    owner: 'team-growth', tags: ['web', 'colour'], description: 'Button colour test', kind: 'release',
  });
  expect(flag.environments.production).toMatchObject({
    state: 'DISABLED', variants: { control: 'blue', treatment: 'green' }, defaultVariant: 'treatment',
  });
});

test('5,000 flags: the list loads one page, and pages on', async ({ page, request }) => {
  // Importing 5,000 flags is one transaction; give a busy machine time.
  test.setTimeout(300_000);
  const set = `bulk-${unique()}`;
  const flags = {};
  for (let n = 0; n < 5000; n += 1) {
    flags[`flag-${String(n).padStart(4, '0')}`] = { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'on' };
  }
  const imported = await request.post(`${ADMIN}/api/v1/import?environment=production&flagSet=${set}`, {
    headers: { Authorization: `Bearer ${process.env.ENSIGN_ADMIN_TOKEN}` }, data: { flags }, timeout: 240_000,
  });
  expect(imported.status(), await imported.text()).toBe(200);

  await signInWithToken(page);
  const pages = [];
  page.on('request', (r) => { if (r.url().includes('/api/v1/flags?')) pages.push(new URL(r.url()).searchParams); });
  const started = Date.now();
  await page.goto(`${ADMIN}/#/flags?flagSet=${set}`);
  await expect(page.getByText('1–50 of 5,000 flags')).toBeVisible();
  console.log(`5,000 flags: first page shown ${Date.now() - started} ms after navigation`);
  await expect(page.locator('.flags-table tbody tr')).toHaveCount(50);
  await page.getByRole('button', { name: 'Next' }).click();
  await expect(page.getByText('51–100 of 5,000 flags')).toBeVisible();
  expect(await keys(page)).toContain('flag-0050');
  // Every request asked for one page, never for everything.
  expect(pages.every((params) => Number(params.get('limit')) <= 200)).toBe(true);
});
