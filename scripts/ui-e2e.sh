#!/usr/bin/env bash
# Browser tests of the web UI: installs @playwright/test (pinned by
# tests/ui/package-lock.json) into tests/ui/node_modules, builds Ensign,
# starts `ensign serve` on free ports with a fresh SQLite database, a
# bootstrap admin token and an Alertmanager webhook secret, and runs
# tests/ui/*.spec.js in headless Debian Chromium (/usr/bin/chromium;
# scripts/install-system-packages.sh installs it).
# Usage: scripts/ui-e2e.sh [playwright test arguments...]
#   UPDATE_SCREENSHOTS=1 also writes docs/screenshots/*.png (light and dark).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/ensign.sh
source "$ROOT/scripts/lib/ensign.sh"

if [[ ! -x /usr/bin/chromium ]]; then
  echo "ui-e2e: /usr/bin/chromium is missing; run scripts/install-system-packages.sh" >&2
  exit 1
fi

cd "$ROOT/tests/ui"
# (Re)install when missing or older than the lock file.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
fi

ensign_build
ENSIGN_ADMIN_TOKEN="ui-e2e-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export ENSIGN_ADMIN_TOKEN
# The Alertmanager webhook's shared secret (tests/ui/kill-switch.spec.js).
ENSIGN_ALERTMANAGER_TOKEN="ui-e2e-am-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export ENSIGN_ALERTMANAGER_TOKEN
ensign_start ""
echo "ui-e2e: ensign admin port $ENSIGN_ADMIN_PORT, OFREP port $ENSIGN_OFREP_PORT"
npx playwright test "$@"
