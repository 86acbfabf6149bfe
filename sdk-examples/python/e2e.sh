#!/usr/bin/env bash
# End-to-end test of the Python example against a live `ensign serve`.
#
# 1. Installs requirements-dev.txt into sdk-examples/python/.venv (skipped when
#    the venv was already built from the same pins).
# 2. Builds ensign and serves a temporary copy of sdk-examples/flags.json on
#    free loopback ports (scripts/lib/ensign.sh).
# 3. Runs test_example.py with FLAGD_HOST/FLAGD_PORT pointing at it.
#
# Exit status: pytest's (non-zero on any failure). Extra arguments go to pytest.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$HERE/.venv"
STAMP="$VENV/.requirements-stamp"

say() { printf 'python/e2e.sh: %s\n' "$*" >&2; }

pins() { cat "$HERE/requirements.txt" "$HERE/requirements-dev.txt"; }

if [[ -x "$VENV/bin/python" && -f "$STAMP" ]] && pins | cmp -s - "$STAMP"; then
  :
else
  say "installing Python dependencies into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements-dev.txt"
  pins >"$STAMP"
fi

# shellcheck source=../../scripts/lib/ensign.sh
source "$ROOT/scripts/lib/ensign.sh"
say "building ensign"
ensign_build

WORK="$(mktemp -d -t ensign-sdk-python.XXXXXX)"
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
    "$VENV/bin/python" -m pytest -p no:cacheprovider -v -rP test_example.py "$@"
)
rc=$?
set -e

if [[ $rc -ne 0 ]]; then
  say "FAILED (pytest exit $rc); ensign log:"
  cat "$ENSIGN_LOG" >&2
fi
exit $rc
