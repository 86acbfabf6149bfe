#!/usr/bin/env bash
# End-to-end test of the browser OFREP example against a live `ensign serve`.
#
# 1. Installs Debian's chromium when /usr/bin/chromium is missing, and the
#    packages pinned in package-lock.json into node_modules/ here (`npm ci`,
#    skipped when node_modules was installed from the same lockfile).
# 2. Builds Ensign and serves a temporary copy of flags.json on free loopback
#    ports, allowing the test page's origin (CORS) and with the static context
#    `-X region=eu-west` (scripts/lib/ensign.sh).
# 3. Runs test/e2e.test.js (`node --test`): a static server for the page and
#    headless Chromium driven by playwright-core.
#
# Exit status: the test runner's. Extra arguments go to node before the file.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
STAMP="$HERE/node_modules/.package-lock.stamp"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
started=$SECONDS

say() { printf 'web-ofrep/e2e.sh: %s\n' "$*" >&2; }

if [[ ! -x "$CHROMIUM" ]]; then
  say "installing chromium (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends chromium >/dev/null ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium >/dev/null; }
fi

if [[ ! -f "$STAMP" ]] || ! cmp -s "$HERE/package-lock.json" "$STAMP"; then
  say "installing npm packages (npm ci)"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >&2)
  cp "$HERE/package-lock.json" "$STAMP"
fi

# shellcheck source=../../scripts/lib/ensign.sh
source "$ROOT/scripts/lib/ensign.sh"
say "building ensign"
ensign_build

WORK="$(mktemp -d -t ensign-web-ofrep.XXXXXX)"
cleanup() { ensign_stop; rm -rf "$WORK" "${ENSIGN_LOG:-}" "${ENSIGN_DATA_DIR:-}"; }
trap cleanup EXIT
cp "$HERE/flags.json" "$WORK/flags.json"
PAGE_PORT="$(ensign_free_port)"
ensign_start "$WORK/flags.json" --cors-origin "http://127.0.0.1:$PAGE_PORT" -X region=eu-west
trap cleanup EXIT # after ensign_start, which sets its own EXIT trap
say "ensign OFREP on http://127.0.0.1:$ENSIGN_OFREP_PORT; page on http://127.0.0.1:$PAGE_PORT"

status=0
(
  cd "$HERE"
  PAGE_PORT="$PAGE_PORT" OFREP_ENDPOINT="http://127.0.0.1:$ENSIGN_OFREP_PORT" FLAGS_FILE="$WORK/flags.json" \
    CHROMIUM="$CHROMIUM" node --test --test-reporter=spec --test-force-exit --test-timeout=60000 "$@" test/e2e.test.js
) || status=$?

if [[ $status -ne 0 ]]; then
  say "FAILED (node --test exit $status); ensign log:"
  if [[ $(wc -l <"$ENSIGN_LOG") -le 80 ]]; then cat "$ENSIGN_LOG" >&2
  else head -n 40 "$ENSIGN_LOG" >&2; echo "[...]" >&2; tail -n 30 "$ENSIGN_LOG" >&2; fi
fi
say "done in $((SECONDS - started)) s"
exit $status
