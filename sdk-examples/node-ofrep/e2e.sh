#!/usr/bin/env bash
# End-to-end test of the Node OFREP example against a live `ensign serve`.
#
# 1. Installs the packages pinned in package-lock.json into node_modules/ here
#    (`npm ci`, skipped when node_modules was installed from the same lockfile).
# 2. Builds Ensign and serves a temporary copy of flags.json on free loopback
#    ports, with an OFREP token and the static context `-X region=eu-west`
#    (scripts/lib/ensign.sh).
# 3. Runs example.test.js (`node --test`) against the OFREP port.
#
# Exit status: the test runner's. Extra arguments go to node before the file.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
STAMP="$HERE/node_modules/.package-lock.stamp"
TOKEN="e2e-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
started=$SECONDS

say() { printf 'node-ofrep/e2e.sh: %s\n' "$*" >&2; }

if [[ ! -f "$STAMP" ]] || ! cmp -s "$HERE/package-lock.json" "$STAMP"; then
  say "installing npm packages (npm ci)"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >&2)
  cp "$HERE/package-lock.json" "$STAMP"
fi

# shellcheck source=../../scripts/lib/ensign.sh
source "$ROOT/scripts/lib/ensign.sh"
say "building ensign"
ensign_build

WORK="$(mktemp -d -t ensign-node-ofrep.XXXXXX)"
cleanup() { ensign_stop; rm -rf "$WORK" "${ENSIGN_LOG:-}" "${ENSIGN_DATA_DIR:-}"; }
trap cleanup EXIT
cp "$HERE/flags.json" "$WORK/flags.json"
ensign_start "$WORK/flags.json" --ofrep-auth-token "$TOKEN" -X region=eu-west
trap cleanup EXIT # after ensign_start, which sets its own EXIT trap
say "ensign OFREP on http://127.0.0.1:$ENSIGN_OFREP_PORT"

status=0
(
  cd "$HERE"
  OFREP_ENDPOINT="http://127.0.0.1:$ENSIGN_OFREP_PORT" OFREP_TOKEN="$TOKEN" \
    node --test --test-reporter=spec --test-force-exit --test-timeout=60000 "$@" example.test.js
) || status=$?

if [[ $status -ne 0 ]]; then
  say "FAILED (node --test exit $status); ensign log:"
  if [[ $(wc -l <"$ENSIGN_LOG") -le 80 ]]; then cat "$ENSIGN_LOG" >&2
  else head -n 40 "$ENSIGN_LOG" >&2; echo "[...]" >&2; tail -n 30 "$ENSIGN_LOG" >&2; fi
fi
say "done in $((SECONDS - started)) s"
exit $status
