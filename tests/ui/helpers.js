// Shared by the UI specs: where the server is, the bootstrap token, calls
// to the admin API for setting up data, and signing in on the sign-in page.

const { expect } = require('@playwright/test');

const ADMIN = `http://127.0.0.1:${process.env.ENSIGN_ADMIN_PORT}`;
const TOKEN = process.env.ENSIGN_ADMIN_TOKEN;
const AUTH = { Authorization: `Bearer ${TOKEN}` };

/** A suffix that keeps one run's names apart from another's. */
const unique = () => `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`;

/** Calls the admin API with the bootstrap token; returns the response. */
async function call(request, method, path, data, headers = {}) {
  return request.fetch(`${ADMIN}/api/v1${path}`, { method, data, headers: { ...AUTH, ...headers } });
}

/** Calls the admin API and expects `status`; returns the JSON body (if any). */
async function must(request, method, path, data, status) {
  const response = await call(request, method, path, data);
  expect(response.status(), `${method} ${path}: ${await response.text()}`).toBe(status);
  return response.status() === 204 ? null : response.json();
}

/** Signs in on the sign-in page with an API token (default: the bootstrap token),
 * then goes to `next` (a `#/…` hash; default: the flags list). */
async function signInWithToken(page, token = TOKEN, next = null) {
  await page.goto(`${ADMIN}/#/login${next ? `?next=${encodeURIComponent(next)}` : ''}`);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('navigation', { name: 'Main' })).toBeVisible();
}

module.exports = { ADMIN, TOKEN, AUTH, unique, call, must, signInWithToken };
