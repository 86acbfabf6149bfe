#!/usr/bin/env bash
# End-to-end test of the Python OFREP example against a live `ensign serve`.
#
# 1. Installs requirements-dev.txt into .venv/ here (skipped when the venv was
#    built from the same pins).
# 2. Builds Ensign and serves a temporary copy of flags.json on free loopback
#    ports, with an OFREP token and the static context `-X region=eu-west`
#    (scripts/lib/ensign.sh).
# 3. Runs test_example.py (pytest) against the OFREP port.
#
# Exit status: pytest's. Extra arguments go to pytest (e.g. -k token).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$HERE/.venv"
STAMP="$VENV/.pins"
TOKEN="e2e-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
started=$SECONDS

say() { printf 'python-ofrep/e2e.sh: %s\n' "$*" >&2; }

pins() { cat "$HERE/requirements.txt" "$HERE/requirements-dev.txt"; }
if [[ ! -x "$VENV/bin/python" || ! -f "$STAMP" ]] || ! pins | cmp -s - "$STAMP"; then
  say "installing Python packages into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements-dev.txt"
  pins >"$STAMP"
fi

# shellcheck source=../../scripts/lib/ensign.sh
source "$ROOT/scripts/lib/ensign.sh"
say "building ensign"
ensign_build

WORK="$(mktemp -d -t ensign-python-ofrep.XXXXXX)"
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
    "$VENV/bin/python" -m pytest -p no:cacheprovider -v -rx test_example.py "$@"
) || status=$?

if [[ $status -ne 0 ]]; then
  say "FAILED (pytest exit $status); ensign log:"
  if [[ $(wc -l <"$ENSIGN_LOG") -le 80 ]]; then cat "$ENSIGN_LOG" >&2
  else head -n 40 "$ENSIGN_LOG" >&2; echo "[...]" >&2; tail -n 30 "$ENSIGN_LOG" >&2; fi
fi
say "done in $((SECONDS - started)) s"
exit $status
