#!/usr/bin/env bash
# End-to-end test of the Node example against a live `ensign serve`.
#
# 1. Installs the pinned packages from package-lock.json into
#    sdk-examples/node/node_modules (`npm ci`, skipped when node_modules was
#    already installed from the same lockfile).
# 2. Builds ensign and serves a temporary copy of sdk-examples/flags.json on
#    free loopback ports (scripts/lib/ensign.sh).
# 3. Runs example.test.js with `node --test`, FLAGD_HOST/FLAGD_PORT pointing at it.
#
# Exit status: the test runner's (non-zero on any failure). Extra arguments go to node.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
STAMP="$HERE/node_modules/.lock-stamp"

say() { printf 'node/e2e.sh: %s\n' "$*" >&2; }

if [[ -f "$STAMP" ]] && cmp -s "$HERE/package-lock.json" "$STAMP"; then
  :
else
  say "installing Node dependencies (npm ci)"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$HERE/package-lock.json" "$STAMP"
fi

# shellcheck source=../../scripts/lib/ensign.sh
source "$ROOT/scripts/lib/ensign.sh"
say "building ensign"
ensign_build

WORK="$(mktemp -d -t ensign-sdk-node.XXXXXX)"
cleanup() { ensign_stop; rm -rf "$WORK" "${ENSIGN_LOG:-}"; }
trap cleanup EXIT
cp "$ROOT/sdk-examples/flags.json" "$WORK/flags.json"
ensign_start "$WORK/flags.json"
trap cleanup EXIT # ensign_start installs its own EXIT trap; put ours back
say "ensign is serving on 127.0.0.1:$ENSIGN_PORT"

set +e
(
  cd "$HERE"
  FLAGD_HOST=127.0.0.1 FLAGD_PORT="$ENSIGN_PORT" FLAGS_FILE="$WORK/flags.json" \
    node --test --test-reporter=spec "$@" example.test.js
)
rc=$?
set -e

if [[ $rc -ne 0 ]]; then
  say "FAILED (node --test exit $rc); ensign log:"
  cat "$ENSIGN_LOG" >&2
fi
exit $rc
