#!/usr/bin/env bash
# End-to-end test of the browser example against a live `ensign serve`.
#
# 1. installs Debian's chromium when missing, and the npm packages from
#    package-lock.json into node_modules/ here (skipped when up to date);
# 2. builds Ensign (scripts/lib/ensign.sh);
# 3. serves a temporary copy of flags.json, with CORS for the test page's
#    origin, and runs test/e2e.test.js: a static server for the page and
#    headless Chromium driven by playwright-core.
#
# Idempotent; with everything installed and built it takes a few seconds.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../../scripts/lib/ensign.sh
source "$ROOT/scripts/lib/ensign.sh"

say() { printf 'web e2e: %s\n' "$*" >&2; }
started=$SECONDS

# --- chromium --------------------------------------------------------------------
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM" ]]; then
  say "installing chromium"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends chromium >/dev/null; then
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends chromium >/dev/null
  fi
fi
export CHROMIUM

# --- npm packages (pinned by package-lock.json) ------------------------------------------
stamp="$HERE/node_modules/.lock-stamp"
if [[ ! -f "$stamp" ]] || ! cmp -s "$HERE/package-lock.json" "$stamp"; then
  say "installing npm packages (npm ci)"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >&2)
  cp "$HERE/package-lock.json" "$stamp"
fi

# --- ensign ------------------------------------------------------------------------
say "building ensign"
ensign_build

work="$(mktemp -d -t ensign-web-e2e.XXXXXX)"
cp "$HERE/flags.json" "$work/flags.json"
cleanup() { ensign_stop; rm -rf "$work"; }
trap cleanup EXIT
PAGE_PORT="$(ensign_free_port)"
ensign_start "$work/flags.json" --cors-origin "http://127.0.0.1:$PAGE_PORT"
trap cleanup EXIT  # ensign_start set its own trap
say "ensign serving $work/flags.json on 127.0.0.1:$ENSIGN_PORT (CORS for http://127.0.0.1:$PAGE_PORT)"

# --- test --------------------------------------------------------------------------
status=0
(cd "$HERE" && PAGE_PORT="$PAGE_PORT" ENSIGN_FLAGS_FILE="$work/flags.json" \
  node --test test/e2e.test.js) || status=$?
if [[ $status -ne 0 ]]; then
  say "FAILED; ensign log:"; tail -n 50 "$ENSIGN_LOG" >&2
fi
say "done in $((SECONDS - started)) s"
exit $status
