#!/usr/bin/env bash
# The flagd-testbed's scenarios against `ensign serve`, driven through the real
# OpenFeature flagd provider (Python). See tests/testbed/README.md.
#
# Usage: scripts/testbed.sh [rpc|in-process|all] [PYTEST ARGS...]   (default: all)
#
#   rpc         the @rpc scenarios, RPC resolver (evaluation port), two passes:
#                 1. every runnable @rpc scenario; @fractional-v2 examples run
#                    against `--fractional v2`, everything else against v3;
#                 2. the @fractional scenarios tagged with neither generation
#                    once more, against `--fractional v2`;
#   in-process  the @in-process scenarios, in-process resolver (sync port), one
#               pass (the provider computes fractional itself, so the server's
#               generation does not matter);
#   all         both modes, one after the other.
#
# Installs the harness into tests/testbed/.venv (skipped when already installed
# from the same pins) and builds ensign. Each pass prints per-feature
# pass/fail/skip counts and the scenarios that cannot run here (with the
# reason); the end prints every pass together. Exits non-zero on any failure.
#
# The testbed is read from $TESTBED_DIR, default ../shared/flagd-testbed beside
# the repository. When it is missing the script skips (exit 0), except under
# CI=true, where that is a failure.
#
# Extra arguments go to pytest for every pass (e.g. -k evaluation, -x, --keep-workdir).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/tests/testbed"
VENV="$DIR/.venv"
TESTBED_DIR="${TESTBED_DIR:-$ROOT/../shared/flagd-testbed}"
export TESTBED_DIR

say() { printf 'testbed.sh: %s\n' "$*" >&2; }

mode=all
if [[ $# -gt 0 ]]; then
  case "$1" in
    rpc|in-process|all) mode="$1"; shift ;;
    -h|--help) sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  esac
fi

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
RESULTS="$(mktemp -d "${TMPDIR:-/tmp}/ensign-testbed-results.XXXXXX")"
trap 'rm -rf "$RESULTS"' EXIT
start=$SECONDS
runs=0
failed=()

# run_pass MODE LABEL DESCRIPTION [PYTEST ARGS...]
run_pass() {
  local pass_mode="$1" label="$2" description="$3"; shift 3
  runs=$((runs + 1))
  local json="$RESULTS/$(printf '%02d' "$runs").json"
  say "$pass_mode, $label: $description"
  set +e
  "$VENV/bin/python" -m pytest -c "$DIR/pytest.ini" --rootdir="$DIR" \
    --ensign-bin="$BIN" --mode="$pass_mode" --summary-json="$json" --run-label="$label" "$@"
  local rc=$?
  set -e
  # pytest exit 5 = nothing selected (possible with a narrowing -k); not a failure.
  if [[ $rc -ne 0 && $rc -ne 5 ]]; then
    failed+=("$pass_mode $label (exit $rc)")
  fi
}

if [[ "$mode" == rpc || "$mode" == all ]]; then
  run_pass rpc "pass 1/2" "all @rpc scenarios (@fractional-v2 examples on --fractional v2, the rest on v3)" \
    "$@"
  run_pass rpc "pass 2/2" "@fractional scenarios without a generation tag, on --fractional v2" \
    -m "fractional and not fractional-v1 and not fractional-v2 and not fractional-v3" \
    --fractional-neutral=v2 "$@"
fi
if [[ "$mode" == in-process || "$mode" == all ]]; then
  run_pass in-process "pass 1/1" "all @in-process scenarios (provider synced from the sync port)" "$@"
fi

elapsed=$((SECONDS - start))
printf '\n===== flagd-testbed against ensign serve: summary (%s) =====\n' "$mode"
"$VENV/bin/python" "$DIR/summary.py" "$RESULTS"/*.json || true
if [[ ${#failed[@]} -eq 0 ]]; then
  say "PASS ($mode; ${elapsed} s)"
  exit 0
fi
say "FAIL ($mode; ${failed[*]}; ${elapsed} s)"
exit 1
