#!/usr/bin/env bash
# Differential test: Ensign vs the flagd reference evaluators (npm
# @openfeature/flagd-core = fractional v2, PyPI openfeature-flagd-core =
# fractional v3) on seeded generated flags and contexts.
#
# Installs both references repo-locally (scripts/differential/node/node_modules
# and scripts/differential/.venv; skipped when already installed from the same
# pins), builds ensign, runs compare.py. Exit status: 0 when every mismatch is
# listed in scripts/differential/known-differences.json, 1 otherwise.
#
# Environment: DIFF_SEED (default 1), DIFF_CASES (default 5000). Extra
# arguments are passed to compare.py (e.g. --examples 5).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/scripts/differential"
SEED="${DIFF_SEED:-1}"
CASES="${DIFF_CASES:-5000}"

say() { printf 'differential.sh: %s\n' "$*" >&2; }

# --- Node reference (npm ci from the pinned lockfile) -------------------------
NODE_DIR="$DIR/node"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  say "node and npm are required"; exit 2
fi
if [[ -f "$NODE_DIR/node_modules/.lock-stamp" ]] \
   && cmp -s "$NODE_DIR/package-lock.json" "$NODE_DIR/node_modules/.lock-stamp"; then
  :
else
  say "installing Node reference (npm ci)"
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error >&2)
  cp "$NODE_DIR/package-lock.json" "$NODE_DIR/node_modules/.lock-stamp"
fi

# --- Python reference (venv from the pinned requirements) ---------------------
VENV="$DIR/.venv"
if [[ -x "$VENV/bin/python" && -f "$VENV/.req-stamp" ]] \
   && cmp -s "$DIR/requirements.txt" "$VENV/.req-stamp"; then
  :
else
  say "installing Python reference (venv + pip)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check --quiet -r "$DIR/requirements.txt" >&2
  cp "$DIR/requirements.txt" "$VENV/.req-stamp"
fi

# --- Ensign ---------------------------------------------------------------------
say "building ensign"
(cd "$ROOT" && cargo build --quiet -p ensign >&2)

# --- compare ----------------------------------------------------------------------
set +e
"$VENV/bin/python" "$DIR/compare.py" --seed "$SEED" --cases "$CASES" \
  --ensign "$ROOT/target/debug/ensign" "$@"
rc=$?
set -e
if [[ $rc -eq 0 ]]; then
  echo "differential.sh: PASS (seed $SEED, $CASES cases; report: scripts/differential/out/report.md)"
else
  echo "differential.sh: FAIL (exit $rc, seed $SEED, $CASES cases; report: scripts/differential/out/report.md)"
fi
exit $rc
