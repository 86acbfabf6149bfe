#!/usr/bin/env bash
# The flagd-testbed's @rpc scenarios against `ensign serve`, driven through the
# real OpenFeature flagd provider (Python, RPC resolver). See tests/testbed-rpc/README.md.
#
# Installs the harness into tests/testbed-rpc/.venv (skipped when already
# installed from the same pins), builds ensign, then runs two passes:
#   1. every runnable @rpc scenario; @fractional-v2 examples run against
#      `--fractional v2`, everything else against the default `--fractional v3`;
#   2. the @fractional scenarios tagged with neither generation once more,
#      against `--fractional v2`.
# Prints per-feature pass/fail/skip counts and the scenarios that cannot run
# here (with the reason); exits non-zero on any failure.
#
# The testbed is read from $TESTBED_DIR, default ../shared/flagd-testbed beside
# the repository. When it is missing the script skips (exit 0), except under
# CI=true, where that is a failure.
#
# Extra arguments go to pytest for both passes (e.g. -k evaluation, -x, --keep-workdir).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/tests/testbed-rpc"
VENV="$DIR/.venv"
TESTBED_DIR="${TESTBED_DIR:-$ROOT/../shared/flagd-testbed}"
export TESTBED_DIR

say() { printf 'testbed-rpc.sh: %s\n' "$*" >&2; }

if [[ ! -d "$TESTBED_DIR/gherkin" || ! -d "$TESTBED_DIR/flags" ]]; then
  if [[ "${CI:-}" == "true" ]]; then
    say "FAIL: flagd-testbed not found at $TESTBED_DIR (needs gherkin/ and flags/)"
    exit 1
  fi
  say "SKIP: flagd-testbed not found at $TESTBED_DIR (set TESTBED_DIR); under CI=true this fails"
  exit 0
fi

for tool in python3 openssl; do
  command -v "$tool" >/dev/null || { say "$tool is required"; exit 2; }
done

# --- harness venv (pinned) -----------------------------------------------------
if [[ -x "$VENV/bin/python" && -f "$VENV/.req-stamp" ]] \
   && cmp -s "$DIR/requirements.txt" "$VENV/.req-stamp"; then
  :
else
  say "installing the harness (venv + pip)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check --quiet -r "$DIR/requirements.txt" >&2
  cp "$DIR/requirements.txt" "$VENV/.req-stamp"
fi

# --- ensign ----------------------------------------------------------------------
say "building ensign"
(cd "$ROOT" && cargo build --quiet -p ensign >&2)
BIN="$ROOT/target/debug/ensign"

# --- run -------------------------------------------------------------------------
cd "$DIR"
start=$SECONDS
run_pass() {
  local label="$1"; shift
  say "$label"
  set +e
  "$VENV/bin/python" -m pytest -c "$DIR/pytest.ini" --rootdir="$DIR" \
    --ensign-bin="$BIN" "$@"
  local rc=$?
  set -e
  return $rc
}

rc1=0; rc2=0
run_pass "pass 1/2: all @rpc scenarios (@fractional-v2 examples on --fractional v2, the rest on v3)" \
  "$@" || rc1=$?
run_pass "pass 2/2: @fractional scenarios without a generation tag, on --fractional v2" \
  -m "fractional and not fractional-v1 and not fractional-v2 and not fractional-v3" --fractional-neutral=v2 "$@" || rc2=$?

elapsed=$((SECONDS - start))
# pytest exit 5 = nothing selected (possible with a narrowing -k); not a failure.
[[ $rc1 -eq 5 ]] && rc1=0
[[ $rc2 -eq 5 ]] && rc2=0
if [[ $rc1 -eq 0 && $rc2 -eq 0 ]]; then
  say "PASS (${elapsed} s)"
  exit 0
fi
say "FAIL (pass 1 exit $rc1, pass 2 exit $rc2; ${elapsed} s)"
exit 1
