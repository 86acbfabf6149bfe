#!/usr/bin/env bash
# Checks the admin API against its own OpenAPI document with Schemathesis:
# every operation of GET /api/v1/openapi.json is sent generated requests
# (examples, coverage, fuzzing, then stateful sequences along the links
# Schemathesis infers), and the run fails on any server error and on any
# answer the document does not describe (status, content type, headers, body
# schema), on a schema-valid request refused or a schema-invalid one accepted,
# and on a guarded operation answering without credentials.
#
# 1. Installs scripts/schemathesis/requirements.txt (Schemathesis pinned) into
#    scripts/schemathesis/.venv (skipped when already installed from the same
#    pins).
# 2. Builds ensign and starts `ensign serve` on free loopback ports
#    (scripts/lib/ensign.sh) with a fresh SQLite database in a temporary
#    folder, a random bootstrap admin token and an Alertmanager secret.
# 3. Seeds a flag set, a flag, a segment, a kill-switch binding, a user and an
#    SLO (the OpenAPI document's examples name them), so the examples phase,
#    stateful sequences and path parameters find something to work on.
# 4. Runs `schemathesis run` with scripts/schemathesis/schemathesis.toml.
#
# Checks: all of them (`--checks all`) but two, excluded with a reason:
# - object_level_authorization needs a second identity's resources to read;
#   the run has one caller (the bootstrap admin, who may read everything), so
#   the check has nothing to compare. Authorization is tested in
#   crates/ensign-admin/tests/api.rs (roles, environment scopes, CSRF).
# - ignored_auth sends wrong tokens and expects 401; after 10 in a minute the
#   address is throttled (429, ADR 0015) for every operation after it, which
#   the check reads as a failure. Wrong and missing credentials are tested in
#   crates/ensign-admin/tests/api.rs, the throttle there and in ensign-http.
# Statuses a schema-valid request may meet for reasons of state, and the
# operations whose bodies get checks JSON Schema cannot state, are listed in
# schemathesis.toml with their reasons.
#
# Bounds: with CI=true a short run (about 3 minutes of testing: 30 examples per
# operation and phase, 150 s in all); by hand a longer one (200 examples,
# 900 s). Override with ST_MAX_EXAMPLES, ST_MAX_TIME, ST_SEED (default 1, so a
# CI failure reproduces) and ST_WORKERS. Extra arguments go to
# `schemathesis run` (e.g. --phases stateful, --include-operation-id X).
# Reports (JUnit, NDJSON) and the server's log are written to
# target/schemathesis/.
#
# Exit status: Schemathesis's (non-zero on any failure).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/scripts/schemathesis"
VENV="$DIR/.venv"
OUT="$ROOT/target/schemathesis"

say() { printf 'schemathesis.sh: %s\n' "$*" >&2; }

if [[ "${CI:-}" == "true" ]]; then
  max_examples="${ST_MAX_EXAMPLES:-30}"
  max_time="${ST_MAX_TIME:-150}"
else
  max_examples="${ST_MAX_EXAMPLES:-200}"
  max_time="${ST_MAX_TIME:-900}"
fi
seed="${ST_SEED:-1}"
workers="${ST_WORKERS:-2}"

# --- Schemathesis (venv from the pinned requirements) ---------------------------
if [[ -x "$VENV/bin/schemathesis" && -f "$VENV/.req-stamp" ]] \
   && cmp -s "$DIR/requirements.txt" "$VENV/.req-stamp"; then
  :
else
  say "installing Schemathesis (venv + pip)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check --quiet -r "$DIR/requirements.txt" >&2
  cp "$DIR/requirements.txt" "$VENV/.req-stamp"
fi

# --- Ensign ----------------------------------------------------------------------
# shellcheck source=lib/ensign.sh
source "$ROOT/scripts/lib/ensign.sh"
say "building ensign"
ensign_build
# At least 32 characters: shorter bootstrap tokens are refused at start-up.
ENSIGN_ADMIN_TOKEN="schemathesis-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
ENSIGN_ALERTMANAGER_TOKEN="schemathesis-am-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
export ENSIGN_ADMIN_TOKEN ENSIGN_ALERTMANAGER_TOKEN
ensign_start ""
cleanup() {
  ensign_stop
  mkdir -p "$OUT"
  if [[ -n "${ENSIGN_LOG:-}" && -f "$ENSIGN_LOG" ]]; then
    mv "$ENSIGN_LOG" "$OUT/ensign.log"
  fi
  rm -rf "${ENSIGN_DATA_DIR:-}"
}
trap cleanup EXIT # ensign_start installs its own EXIT trap; put ours back
API="http://127.0.0.1:$ENSIGN_ADMIN_PORT/api/v1"
say "ensign admin API at $API"

# --- Seed data ---------------------------------------------------------------------
seed_call() {
  local method="$1" path="$2" body="$3" answer
  answer="$(curl -sS -w '\n%{http_code}' -X "$method" "$API$path" \
    -H "Authorization: Bearer $ENSIGN_ADMIN_TOKEN" -H 'Content-Type: application/json' \
    --data "$body")"
  if [[ "${answer##*$'\n'}" != 2* ]]; then
    say "seeding $method $path failed: $answer"
    return 1
  fi
}
seed_call POST /flag-sets '{"key": "web", "name": "Web"}'
seed_call PUT /flag-sets/web/segments/beta \
  '{"description": "Beta testers", "rule": {"ends_with": [{"var": "email"}, "@example.com"]}}'
seed_call POST /flags '{"flagSet": "web", "key": "banner", "state": "ENABLED",
  "variants": {"on": true, "off": false}, "defaultVariant": "off",
  "targeting": {"if": [{"$ref": "beta"}, "on", null]}}'
seed_call POST /kill-switches '{"name": "checkout-errors", "matchers": {"alertname": "CheckoutErrors"},
  "targets": [{"flagSet": "web", "flag": "banner", "environment": "production", "action": "disable"}]}'
seed_call POST /users '{"name": "ada@example.com", "password": "correct horse battery", "role": "viewer"}'
seed_call PUT /slos/checkout-availability '{"version": "prometheus/v1", "service": "checkout",
  "slos": [{"name": "availability", "objective": 99.9, "alerting": {"name": "CheckoutAvailability"},
    "sli": {"events": {"error_query": "sum(rate(http_requests_total{code=~\"5..\"}[{{.window}}]))",
                       "total_query": "sum(rate(http_requests_total[{{.window}}]))"}}}]}'

# --- Run -------------------------------------------------------------------------
mkdir -p "$OUT"
say "schemathesis run: up to $max_examples examples per operation, ${max_time} s, seed $seed"
started=$SECONDS
set +e
(
  cd "$DIR"
  "$VENV/bin/schemathesis" run "$API/openapi.json" \
    --checks all --exclude-checks object_level_authorization,ignored_auth \
    --max-examples "$max_examples" --max-time "$max_time" --seed "$seed" \
    --workers "$workers" --request-timeout 10 --no-color --output-truncate false \
    --report junit,ndjson --report-dir "$OUT" \
    "$@"
)
rc=$?
set -e
say "schemathesis finished in $((SECONDS - started)) s with exit status $rc"
if [[ $rc -ne 0 ]]; then
  say "the server's log: $OUT/ensign.log"
fi
exit $rc
