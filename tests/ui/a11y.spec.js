// Basic accessibility checks on every main page, in both themes: every form
// control and button has an accessible name, each page has one h1, and all
// visible text meets WCAG AA contrast against what is drawn behind it.

const { test, expect } = require('@playwright/test');
const { ADMIN, unique, must, signInWithToken } = require('./helpers');

/** Controls and buttons without an accessible name (label, aria-label(ledby), text, title). */
function unnamedControls() {
  const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  const named = (el) => {
    if (el.getAttribute('aria-label')?.trim()) return true;
    const ids = el.getAttribute('aria-labelledby');
    if (ids && ids.split(/\s+/).some((id) => document.getElementById(id)?.textContent.trim())) return true;
    if (el.labels && [...el.labels].some((label) => label.textContent.trim())) return true;
    if (el.matches('button, a') && el.textContent.trim()) return true;
    return Boolean(el.getAttribute('title')?.trim());
  };
  return [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href], [role=slider], [role=tab]')]
    .filter(visible).filter((el) => !named(el)).map((el) => el.outerHTML.slice(0, 120));
}

/** Text whose contrast with its background is below WCAG AA. */
function lowContrast() {
  const parse = (text) => {
    const m = /rgba?\(([\d.]+),?\s*([\d.]+),?\s*([\d.]+)(?:\s*[,/]\s*([\d.]+))?\)/.exec(text)
      ?? /color\(srgb ([\d.]+) ([\d.]+) ([\d.]+)(?: \/ ([\d.]+))?\)/.exec(text);
    if (!m) return null;
    const scale = text.startsWith('color(') ? 255 : 1;
    return [Number(m[1]) * scale, Number(m[2]) * scale, Number(m[3]) * scale, m[4] === undefined ? 1 : Number(m[4])];
  };
  const over = (top, bottom) => top.slice(0, 3).map((c, i) => c * top[3] + bottom[i] * (1 - top[3])).concat(1);
  const background = (el) => {
    const layers = [];
    for (let node = el; node; node = node.parentElement) {
      const color = parse(getComputedStyle(node).backgroundColor);
      if (color && color[3] > 0) layers.push(color);
      if (color && color[3] === 1) break;
    }
    return layers.reverse().reduce((below, layer) => over(layer, below), [255, 255, 255, 1]);
  };
  const luminance = ([r, g, b]) => {
    const channel = (c) => { const s = c / 255; return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  const failures = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!node.textContent.trim() || !el || el.closest('[disabled], [aria-hidden=true], option')) continue;
    if (!el.getClientRects().length) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || Number(style.opacity) < 1) continue;
    const back = background(el);
    const fore = over(parse(style.color), back);
    const [light, dark] = [luminance(fore), luminance(back)].sort((a, b) => b - a);
    const ratio = (light + 0.05) / (dark + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) failures.push(`${ratio.toFixed(2)} "${node.textContent.trim().slice(0, 40)}" (${style.color} on ${back.map(Math.round)})`);
  }
  return failures;
}

const PAGES = ['#/flags', '#/segments', '#/admin/environments', '#/admin/flag-sets', '#/admin/tokens', '#/admin/users'];

test.beforeAll(async ({ request }) => {
  const set = `a11y-${unique()}`;
  await must(request, 'POST', '/flag-sets', { key: set, metadata: { team: 'a11y' } }, 201);
  await must(request, 'POST', '/flags', { flagSet: set, key: 'a11y-flag', tags: ['web'], variants: { on: true, off: false }, defaultVariant: 'off', expiresAt: 1 }, 201);
  await must(request, 'PUT', `/flag-sets/${set}/segments/everyone`, { description: 'All', rule: { '==': [1, 1] } }, 201);
});

for (const theme of ['light', 'dark']) {
  test(`every control is labelled and all text has AA contrast (${theme})`, async ({ page }) => {
    // Anything the Content-Security-Policy blocks (an inline style, say) is a console error.
    const errors = [];
    page.on('console', (message) => { if (message.type() === 'error') errors.push(message.text()); });
    page.on('pageerror', (error) => errors.push(error.message));
    await page.emulateMedia({ colorScheme: theme });
    await page.goto(`${ADMIN}/#/login`);
    await expect(page.getByRole('heading', { level: 1, name: 'Sign in' })).toBeVisible();
    expect(await page.evaluate(unnamedControls)).toEqual([]);
    expect(await page.evaluate(lowContrast)).toEqual([]);
    await signInWithToken(page);
    for (const hash of PAGES) {
      await page.goto(`${ADMIN}/${hash}`);
      await expect(page.locator('main h1')).toHaveCount(1);
      await expect(page.locator('main[aria-busy]')).toHaveCount(0);
      expect(await page.evaluate(unnamedControls), hash).toEqual([]);
      expect(await page.evaluate(lowContrast), hash).toEqual([]);
    }
    await page.goto(`${ADMIN}/#/flags`);
    await page.getByRole('button', { name: 'New flag' }).click();
    await expect(page.getByRole('dialog')).toBeVisible();
    expect(await page.evaluate(unnamedControls), 'new flag').toEqual([]);
    expect(await page.evaluate(lowContrast), 'new flag').toEqual([]);
    expect(errors).toEqual([]);
  });
}

test('the contrast check finds faint text', async ({ page }) => {
  await page.goto(`${ADMIN}/#/login`);
  await expect(page.getByRole('heading', { level: 1, name: 'Sign in' })).toBeVisible();
  await page.evaluate(() => {
    const faint = document.createElement('p');
    faint.textContent = 'faint';
    faint.style.color = '#bbbbbb';
    document.querySelector('.login-card').append(faint);
  });
  const failures = await page.evaluate(lowContrast);
  expect(failures).toHaveLength(1);
  expect(failures[0]).toContain('"faint"');
});

test('the theme toggle overrides the system theme and is remembered', async ({ page }) => {
  await page.emulateMedia({ colorScheme: 'light' });
  await signInWithToken(page);
  const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const light = await background();
  await page.getByRole('button', { name: 'Switch to dark theme' }).click();
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
  expect(await background()).not.toBe(light);
  await page.reload();
  await expect(page.getByRole('button', { name: 'Switch to light theme' })).toBeVisible();
  expect(await background()).not.toBe(light);
});

test('the keyboard reaches the navigation and the focus ring is visible', async ({ page }) => {
  await signInWithToken(page);
  await expect(page.getByRole('heading', { level: 1, name: 'Flags' })).toBeFocused();
  await page.keyboard.press('Tab');
  const focused = page.locator(':focus');
  await expect(focused).toHaveCount(1);
  await expect(focused).not.toHaveJSProperty('tagName', 'H1');
  const outline = await focused.evaluate((el) => getComputedStyle(el).outlineStyle);
  expect(outline).not.toBe('none');
});
