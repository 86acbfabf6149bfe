// Screenshots of the main pages in light and dark for the README, written to
// docs/screenshots/ only with UPDATE_SCREENSHOTS=1.

const fs = require('node:fs');
const path = require('node:path');
const { test, expect } = require('@playwright/test');
const { ADMIN, call, must, signInWithToken } = require('./helpers');

const SCREENSHOTS = path.join(__dirname, '..', '..', 'docs', 'screenshots');
const OFREP = `http://127.0.0.1:${process.env.ENSIGN_OFREP_PORT}`;
const SET = 'storefront';
const DAY = 24 * 3600 * 1000;

test.skip(process.env.UPDATE_SCREENSHOTS !== '1', 'UPDATE_SCREENSHOTS=1 writes the screenshots');

const FLAGS = [
  ['checkout-redesign', 'release', 'team-checkout', ['web', 'checkout'], 'The new one-page checkout', ['development', 'staging', 'production']],
  ['express-shipping', 'release', 'team-fulfilment', ['web', 'app'], 'Next-day delivery option at checkout', ['development', 'staging']],
  ['gift-cards', 'release', 'team-payments', ['payments'], 'Sell and redeem gift cards', ['development']],
  ['homepage-hero-test', 'experiment', 'team-growth', ['web'], 'A/B/n test of the homepage hero', ['development', 'staging', 'production']],
  ['legacy-cart-fallback', 'operational', 'team-checkout', ['checkout'], 'Serve the old cart if the new one fails', []],
  ['loyalty-points', 'permission', 'team-loyalty', ['app'], 'Members earn points on every order', ['development', 'production']],
  ['recommendations-v2', 'release', 'team-discovery', ['web', 'ml'], 'Second-generation product recommendations', ['development', 'staging']],
  ['search-typo-tolerance', 'release', 'team-discovery', ['web'], 'Fuzzy matching in product search', ['development', 'staging', 'production']],
  ['payments-kill-switch', 'operational', 'team-payments', ['payments'], 'Turn off card payments during incidents', ['development', 'staging', 'production']],
];

test('screenshots of the main pages, light and dark', async ({ page, request }) => {
  test.setTimeout(300_000);
  await call(request, 'POST', '/flag-sets', { key: SET, name: 'Storefront', metadata: { team: 'commerce' } });
  await call(request, 'PUT', `/flag-sets/${SET}/segments/beta-testers`, {
    description: 'Customers who opted into early features',
    rule: { or: [{ in: [{ var: 'email' }, ['ana@example.com', 'li@example.com']] }, { ends_with: [{ var: 'email' }, '@ensign.example'] }] },
  });
  await call(request, 'PUT', `/flag-sets/${SET}/segments/eu-customers`, {
    description: 'Customers shipping to the EU', rule: { in: [{ var: 'country' }, ['DE', 'FR', 'NL', 'ES', 'IT']] },
  });
  for (const [key, kind, owner, tags, description, on] of FLAGS) {
    const created = await call(request, 'POST', '/flags', {
      flagSet: SET, key, kind, owner, tags, description, variants: { on: true, off: false }, defaultVariant: 'off',
      expiresAt: key === 'gift-cards' ? Date.now() - 3 * DAY : null,
      targeting: key === 'checkout-redesign' ? { if: [{ $ref: 'beta-testers' }, 'on', 'off'] } : null,
    });
    if (created.status() !== 201) continue;
    for (const env of on) await must(request, 'POST', `/flags/${SET}/${key}/environments/${env}/toggle`, { enabled: true }, 200);
  }
  await call(request, 'PATCH', `/flags/${SET}/legacy-cart-fallback`, { stage: 'stale' });
  await call(request, 'PATCH', `/flags/${SET}/checkout-redesign`, { stage: 'active' });
  await call(request, 'PATCH', `/flags/${SET}/search-typo-tolerance`, { stage: 'released' });
  await call(request, 'PATCH', `/flags/${SET}/payments-kill-switch`, { stage: 'permanent' });
  await call(request, 'POST', '/tokens', { name: 'ci-deploy', role: 'editor', environments: ['staging'] });
  await call(request, 'POST', '/tokens', { name: 'grafana-readonly', role: 'viewer' });
  // Evaluations mark "last evaluated"; the server writes the marks every 30 s.
  for (const key of ['checkout-redesign', 'homepage-hero-test', 'search-typo-tolerance', 'payments-kill-switch', 'loyalty-points']) {
    await request.post(`${OFREP}/ofrep/v1/evaluate/flags/${key}`, { data: { context: { targetingKey: 'user-1' } } });
  }
  await expect.poll(async () => (await must(request, 'GET', `/flags/${SET}/checkout-redesign`, undefined, 200)).lastEvaluatedAt,
    { timeout: 120_000, intervals: [2000] }).not.toBeNull();

  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.setViewportSize({ width: 1280, height: 800 });
  for (const theme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: theme });
    await page.goto(`${ADMIN}/#/login`);
    await expect(page.getByRole('heading', { level: 1, name: 'Sign in' })).toBeVisible();
    await page.screenshot({ path: path.join(SCREENSHOTS, `login-${theme}.png`) });
    await signInWithToken(page);
    const shots = [
      ['flags', `#/flags?flagSet=${SET}`, 'Flags'],
      ['segment', `#/segments/${SET}/beta-testers`, 'beta-testers'],
      ['tokens', '#/admin/tokens', 'API tokens'],
    ];
    for (const [name, hash, heading] of shots) {
      await page.goto(`${ADMIN}/${hash}`);
      await expect(page.getByRole('heading', { level: 1, name: heading })).toBeVisible();
      await expect(page.locator('main[aria-busy], table[aria-busy]')).toHaveCount(0);
      await page.locator('h1').blur();
      // A viewport as tall as the page, so the sticky navigation is drawn once.
      const height = await page.evaluate(() => document.documentElement.scrollHeight);
      await page.setViewportSize({ width: 1280, height: Math.max(800, height) });
      await page.screenshot({ path: path.join(SCREENSHOTS, `${name}-${theme}.png`) });
      await page.setViewportSize({ width: 1280, height: 800 });
    }
    await page.goto(`${ADMIN}/#/flags?flagSet=${SET}`);
    await page.getByRole('button', { name: 'New flag' }).click();
    await page.getByRole('dialog').getByLabel('Key').fill('one-click-reorder');
    await page.screenshot({ path: path.join(SCREENSHOTS, `new-flag-${theme}.png`) });
    await page.keyboard.press('Escape');
    await page.getByRole('button', { name: 'Sign out' }).click();
  }
});
