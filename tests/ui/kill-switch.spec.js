// The kill switch in the web UI: a binding created on the kill-switches page
// (a 422 shown next to its field first), an Alertmanager notification that
// fires it, the flag page's active kill while OFREP serves the flag DISABLED,
// and a restore by hand that the kill-switch history attributes to the person
// who pressed it. Then editing and deleting a binding, and an Alertmanager
// receiver whose secret is shown once, works, and stops working once deleted.

const fs = require('node:fs');
const path = require('node:path');
const { test, expect } = require('@playwright/test');
const { ADMIN, unique, must, call, signInWithToken } = require('./helpers');

const OFREP = `http://127.0.0.1:${process.env.ENSIGN_OFREP_PORT}`;
const WEBHOOK = `${ADMIN}/api/v1/integrations/alertmanager`;
const SECRET = process.env.ENSIGN_ALERTMANAGER_TOKEN;
const RUN = unique();
const SET = `kill-${RUN}`;
const KEY = `new-checkout-${RUN}`;
const BINDING = `checkout-availability-${RUN}`;
const SLO = `checkout-availability-${RUN}`;
const SCREENSHOTS = path.join(__dirname, '..', '..', 'docs', 'screenshots');

test.describe.configure({ mode: 'serial' });

/** An Alertmanager webhook notification (version 4) with one alert. */
function notification(status, labels, fingerprint) {
  return {
    version: '4', groupKey: `{}:{alertname="${labels.alertname}"}`, truncatedAlerts: 0, status, receiver: 'ensign',
    groupLabels: { alertname: labels.alertname }, commonLabels: labels, commonAnnotations: {}, externalURL: 'http://alertmanager.invalid',
    alerts: [{ status, labels, annotations: { summary: 'Checkout availability is burning its error budget' },
      startsAt: new Date(Date.now() - 60_000).toISOString(), endsAt: '0001-01-01T00:00:00Z', generatorURL: '', fingerprint }],
  };
}

/** One OFREP evaluation of the flag. */
async function ofrep(request) {
  const response = await request.post(`${OFREP}/ofrep/v1/evaluate/flags/${KEY}`, { data: { context: { targetingKey: 'user-1' } } });
  return response.json();
}

async function confirm(page, label) {
  const dialog = page.getByRole('dialog');
  await expect(dialog).toBeVisible();
  await dialog.getByRole('button', { name: label }).click();
  await expect(dialog).toBeHidden();
}

test.beforeAll(async ({ request }) => {
  await must(request, 'POST', '/flag-sets', { key: SET, name: 'Checkout' }, 201);
  await must(request, 'POST', '/flags', { flagSet: SET, key: KEY, description: 'The one-page checkout',
    variants: { on: true, off: false }, defaultVariant: 'on' }, 201);
  await must(request, 'POST', `/flags/${SET}/${KEY}/environments/production/toggle`, { enabled: true }, 200);
});

test('an alert fires a binding made on the page, and a person restores the flag', async ({ page, request }, testInfo) => {
  await expect.poll(async () => (await ofrep(request)).reason, { timeout: 15000 }).toBe('STATIC');

  await signInWithToken(page, undefined, '#/kill-switches');
  await expect(page.getByRole('heading', { level: 1, name: 'Kill switches' })).toBeVisible();
  const actor = (await page.locator('.who-name').textContent()).trim();
  await page.getByRole('button', { name: 'New binding' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByRole('textbox', { name: 'Name', exact: true }).fill('not a valid name!');
  await dialog.getByLabel('Description').fill('Turn the new checkout off when its availability SLO pages');
  await expect(dialog.getByLabel('Label 1 name')).toHaveValue('slo');
  await dialog.getByLabel('Label 1 value').fill(SLO);
  await expect(dialog.getByLabel('Label 2 value')).toHaveValue('page');
  await dialog.getByLabel('Flag set').selectOption(SET);
  await expect(dialog.getByLabel('Flag', { exact: true })).toHaveValue(KEY);
  await dialog.getByLabel('Environment').selectOption('production');
  await dialog.getByLabel('Action').selectOption('disable');
  await dialog.getByRole('button', { name: 'Create binding' }).click();

  // The API's 422 is shown next to the name; the input stays.
  const name = dialog.getByRole('textbox', { name: 'Name', exact: true });
  await expect(name).toHaveAttribute('aria-invalid', 'true');
  await expect(dialog.locator('[data-pointer="/name"] .field-error')).toContainText('letters, digits');
  await expect(dialog.getByLabel('Label 1 value')).toHaveValue(SLO);
  await name.fill(BINDING);
  await dialog.getByRole('button', { name: 'Create binding' }).click();
  await expect(dialog).toBeHidden();
  const row = page.getByRole('row').filter({ hasText: BINDING });
  await expect(row.getByText(`slo="${SLO}"`)).toBeVisible();
  await expect(row.getByText('severity="page"')).toBeVisible();
  await expect(row.getByRole('link', { name: `${SET}/${KEY}` })).toBeVisible();
  await expect(row.getByText('keep until restored')).toBeVisible();

  // Alertmanager notifies; a wrong secret is refused first.
  const labels = { alertname: 'CheckoutAvailabilityBurn', slo: SLO, severity: 'page' };
  const refused = await request.post(WEBHOOK, { headers: { Authorization: 'Bearer wrong' }, data: notification('firing', labels, `fp-${RUN}`) });
  expect(refused.status()).toBe(401);
  const fired = await request.post(WEBHOOK, { headers: { Authorization: `Bearer ${SECRET}` }, data: notification('firing', labels, `fp-${RUN}`) });
  expect(fired.status(), await fired.text()).toBe(200);
  const { actions } = await fired.json();
  expect(actions).toEqual([expect.objectContaining({ flag: KEY, environment: 'production', action: 'disable', binding: BINDING, outcome: 'applied' })]);
  await expect.poll(async () => (await ofrep(request)).reason, { timeout: 15000 }).toBe('DISABLED');

  // The flag page shows the kill, what caused it, and restores by hand.
  await row.getByRole('link', { name: `${SET}/${KEY}` }).click();
  await expect(page.getByRole('heading', { level: 1, name: KEY })).toBeVisible();
  const panel = page.locator('section.flag-kill');
  await expect(panel.getByRole('heading', { name: 'Active' })).toBeVisible();
  await expect(panel.getByText('production: disable', { exact: true })).toBeVisible();
  await expect(panel.getByText(`binding ${BINDING}, alert CheckoutAvailabilityBurn`)).toBeVisible();
  await expect(panel.getByText('alert still firing')).toBeVisible();
  await panel.screenshot({ path: testInfo.outputPath('active-kill.png') });
  await panel.getByRole('button', { name: 'Restore production' }).click();
  await confirm(page, 'Restore');
  await expect(page.getByText(`Restored ${KEY} in production.`)).toBeVisible();
  await expect(panel.getByRole('heading', { name: 'Active' })).toHaveCount(0);
  await expect(panel.getByRole('heading', { name: 'History' })).toBeVisible();
  await expect(panel.getByText(new RegExp(`^restored .* by ${actor}$`))).toBeVisible();
  await expect.poll(async () => (await ofrep(request)).reason, { timeout: 15000 }).toBe('STATIC');
  expect((await ofrep(request)).value).toBe(true);
  const status = await must(request, 'GET', `/flags/${SET}/${KEY}/kill-switch`, undefined, 200);
  expect(status.active).toEqual([]);
  expect(status.history[0]).toEqual(expect.objectContaining({ restoredBy: actor, restoreOutcome: 'restored' }));
});

test('a binding is edited and deleted on the page', async ({ page, request }) => {
  await signInWithToken(page, undefined, '#/kill-switches');
  const row = page.getByRole('row').filter({ hasText: BINDING });
  await row.getByRole('button', { name: `Edit ${BINDING}` }).click();
  const dialog = page.getByRole('dialog');
  await expect(dialog.getByRole('textbox', { name: 'Name', exact: true })).toHaveValue(BINDING);
  await expect(dialog.getByLabel('Flag', { exact: true })).toHaveValue(KEY);
  await dialog.getByLabel('Action').selectOption('variant');
  await expect(dialog.getByLabel('Variant')).toBeVisible();
  await dialog.getByLabel('Variant').selectOption('off');
  await dialog.getByLabel('When the alert resolves').selectOption('restore');
  await dialog.getByLabel('Cool-down (seconds)').fill('90');
  await dialog.getByLabel(/Dry run/).check();
  await dialog.getByRole('button', { name: 'Save binding' }).click();
  await expect(dialog).toBeHidden();
  await expect(row.getByText('Dry run')).toBeVisible();
  await expect(row.getByText('serve variant “off”')).toBeVisible();
  await expect(row.getByText('restore after 90 s')).toBeVisible();
  const saved = await must(request, 'GET', `/kill-switches/${BINDING}`, undefined, 200);
  expect(saved).toEqual(expect.objectContaining({ onResolved: 'restore', cooldownSeconds: 90, dryRun: true, version: 2 }));
  expect(saved.targets).toEqual([{ flagSet: SET, flag: KEY, environment: 'production', action: 'variant:off' }]);

  await row.getByRole('button', { name: `Delete ${BINDING}` }).click();
  await confirm(page, 'Delete');
  await expect(page.getByText(`Binding ${BINDING} deleted.`)).toBeVisible();
  await expect(page.getByRole('row').filter({ hasText: BINDING })).toHaveCount(0);
  expect((await call(request, 'GET', `/kill-switches/${BINDING}`)).status()).toBe(404);
});

test('an Alertmanager receiver shows its secret once, which works until it is deleted', async ({ page, request }) => {
  const receiver = `alertmanager-${RUN}`;
  await signInWithToken(page, undefined, '#/kill-switches');
  const section = page.getByRole('region', { name: 'Alertmanager receivers' });
  await section.getByRole('button', { name: 'New receiver' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByRole('textbox', { name: 'Name', exact: true }).fill(receiver);
  await dialog.getByRole('button', { name: 'Create receiver' }).click();
  const shown = page.getByRole('dialog', { name: `Receiver ${receiver} created` });
  await expect(shown.getByText('shown only this once')).toBeVisible();
  const secret = (await shown.locator('#receiver-secret').textContent()).trim();
  expect(secret.length).toBeGreaterThan(20);
  await shown.getByRole('button', { name: 'Done' }).click();
  await expect(section.getByRole('row').filter({ hasText: receiver })).toBeVisible();
  await expect(page.getByText(secret)).toHaveCount(0);

  const basic = `Basic ${Buffer.from(`${receiver}:${secret}`).toString('base64')}`;
  const quiet = notification('firing', { alertname: 'Unrelated', team: RUN }, `quiet-${RUN}`);
  const accepted = await request.post(WEBHOOK, { headers: { Authorization: basic }, data: quiet });
  expect(accepted.status(), await accepted.text()).toBe(200);
  expect((await accepted.json()).actions.every((action) => action.outcome === 'no_match')).toBe(true);

  await section.getByRole('button', { name: `Delete receiver ${receiver}` }).click();
  await confirm(page, 'Delete');
  await expect(section.getByRole('row').filter({ hasText: receiver })).toHaveCount(0);
  const refused = await request.post(WEBHOOK, { headers: { Authorization: basic }, data: quiet });
  expect(refused.status()).toBe(401);
});

test('screenshots of the kill-switches page, light and dark', async ({ page, request }, testInfo) => {
  test.skip(process.env.UPDATE_SCREENSHOTS !== '1', 'UPDATE_SCREENSHOTS=1 writes the screenshots');
  const set = 'payments';
  await call(request, 'POST', '/flag-sets', { key: set, name: 'Payments' });
  for (const [key, variants] of [['card-payments', { on: true, off: false }], ['wallet-checkout', { on: true, off: false }],
    ['fraud-model', { v3: 'v3', v4: 'v4' }]]) {
    await call(request, 'POST', '/flags', { flagSet: set, key, variants, defaultVariant: Object.keys(variants)[0] });
  }
  await call(request, 'POST', '/kill-switches', { name: 'payments-availability-page', description: 'Card payments off while the payments SLO pages',
    matchers: { slo: 'payments-availability', severity: 'page' },
    targets: [{ flagSet: set, flag: 'card-payments', environment: 'production', action: 'disable' },
      { flagSet: set, flag: 'wallet-checkout', environment: 'production', action: 'disable' }] });
  await call(request, 'POST', '/kill-switches', { name: 'fraud-model-latency', description: 'Back to the previous fraud model when scoring is slow',
    matchers: { alertname: 'FraudScoringLatency', service: 'fraud' },
    targets: [{ flagSet: set, flag: 'fraud-model', environment: 'production', action: 'variant:v3' }], onResolved: 'restore', cooldownSeconds: 600 });
  await call(request, 'POST', '/kill-switches', { name: 'wallet-errors-staging', description: 'Trial in staging: records only',
    matchers: { slo: 'wallet-errors', env: 'staging' },
    targets: [{ flagSet: set, flag: 'wallet-checkout', environment: 'staging', action: 'disable' }], dryRun: true });
  await call(request, 'POST', '/integrations/alertmanager/receivers', { name: 'alertmanager-prod' });

  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  for (const theme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: theme });
    await page.setViewportSize({ width: 1280, height: 800 });
    await signInWithToken(page, undefined, '#/kill-switches');
    await expect(page.getByRole('heading', { level: 1, name: 'Kill switches' })).toBeVisible();
    await expect(page.locator('main[aria-busy]')).toHaveCount(0);
    await page.locator('h1').blur();
    const height = await page.evaluate(() => document.documentElement.scrollHeight);
    await page.setViewportSize({ width: 1280, height: Math.max(800, height) });
    await page.screenshot({ path: path.join(SCREENSHOTS, `kill-switches-${theme}.png`) });
    // The binding form, for a look at it (not kept in docs/).
    await page.getByRole('button', { name: 'Edit fraud-model-latency' }).click();
    await expect(page.getByRole('dialog').getByLabel('Variant')).toHaveValue('v3');
    await page.screenshot({ path: testInfo.outputPath(`binding-form-${theme}.png`) });
    await page.keyboard.press('Escape');
    await page.getByRole('button', { name: 'Sign out' }).click();
  }
});
