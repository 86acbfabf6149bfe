// Browser tests of Ensign's web UI; run through scripts/ui-e2e.sh, which
// starts the server and sets ENSIGN_ADMIN_PORT, ENSIGN_OFREP_PORT and
// ENSIGN_ADMIN_TOKEN. One worker: the specs share one server.
const { defineConfig } = require('@playwright/test');

module.exports = defineConfig({
  testDir: __dirname,
  testMatch: '*.spec.js',
  timeout: 60_000,
  expect: { timeout: 10_000 },
  workers: 1,
  forbidOnly: true,
  reporter: [['list']],
  outputDir: '/tmp/ensign-ui-test-results',
  use: {
    baseURL: `http://127.0.0.1:${process.env.ENSIGN_ADMIN_PORT}`,
    viewport: { width: 1280, height: 900 },
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      // CI containers run as root, where Chromium's sandbox cannot start.
      args: ['--no-sandbox'],
    },
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
  },
});
