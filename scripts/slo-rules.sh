#!/usr/bin/env bash
# Proves the SLO rules `ensign slo rules` generates with the real Prometheus
# tools (Debian's `prometheus` package), then the SLO status endpoint against a
# real Prometheus:
#
#  1. every example spec in docs/examples/slo/ validates; broken specs and
#     scales are refused with their JSON Pointers;
#  2. at window scale 1 and 60: `promtool check rules` on the generated rules,
#     and `promtool test rules` on tests/slo/*.test.yml (a burst pages with
#     `ensign_flag`, a slow burn opens a ticket only, healthy traffic fires
#     nothing). The tests are written in minutes; at scale 60 the script reads
#     every minute as a second, and the results must be the same;
#  3. a mutant (the page threshold made 10x laxer) must fail those tests, so
#     they can fail;
#  4. live: Prometheus (1 s scrapes) evaluates the scale-60 rules over a
#     loopback metrics endpoint serving 50 % errors for availability and fast
#     answers for latency, and `ensign serve --slo ... --prometheus-url ...`
#     reports `critical` and `ok`, `no-data` for an SLO without series, 404
#     with "status": "unknown" for an unknown name, and `unreachable` (still
#     200 JSON) once Prometheus is stopped.
#
# Everything listens on 127.0.0.1 only; every process is stopped on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/ensign.sh
source "$ROOT/scripts/lib/ensign.sh"

step() { printf '\n--> %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

bash "$ROOT/scripts/install-system-packages.sh" >/dev/null
command -v promtool >/dev/null || fail "promtool is missing (Debian package prometheus)"
command -v prometheus >/dev/null || fail "prometheus is missing (Debian package prometheus)"
ensign_build

WORK="$(mktemp -d -t ensign-slo.XXXXXX)"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; fi
  done
  ensign_stop
  rm -rf "$WORK"
}
trap cleanup EXIT

step "example specs validate"
"$ENSIGN_BIN" slo validate "$ROOT"/docs/examples/slo/*.yml

step "broken specs and scales are refused with their pointers"
cat >"$WORK/broken.yml" <<'EOF'
version: prometheus/v1
service: checkout
slos:
  - name: availability
    objective: 100
    sli: {events: {error_query: "sum(rate(errors[5m]))", total_query: "sum(rate(total[{{.window}}]))"}}
    alerting: {name: CheckoutAvailability, page_alert: {labels: {sloth_severity: page}}}
EOF
if "$ENSIGN_BIN" slo validate "$WORK/broken.yml" >"$WORK/broken.out"; then
  fail "a broken spec validated"
fi
for pointer in /slos/0/objective /slos/0/sli/events/error_query /slos/0/alerting/page_alert/labels/sloth_severity; do
  grep -q "error at $pointer:" "$WORK/broken.out" || { cat "$WORK/broken.out"; fail "no problem at $pointer"; }
done
if "$ENSIGN_BIN" slo rules --window-scale 301 "$ROOT/docs/examples/slo/checkout.yml" >/dev/null 2>"$WORK/scale.err"; then
  fail "--window-scale 301 (a 5m window under 1s) was accepted"
fi
grep -q "at least 1s" "$WORK/scale.err" || { cat "$WORK/scale.err"; fail "no reason for the refused scale"; }

# Generates the rules of every example spec at `scale` into `dir`, next to the
# unit tests (converted from minutes to seconds when scale is 60).
prepare() {
  local scale="$1" dir="$2" spec test
  mkdir -p "$dir"
  for spec in "$ROOT"/docs/examples/slo/*.yml; do
    "$ENSIGN_BIN" slo rules --window-scale "$scale" "$spec" >"$dir/$(basename "$spec" .yml)-rules.yml"
  done
  for test in "$ROOT"/tests/slo/*.test.yml; do
    if [[ "$scale" == 1 ]]; then
      cp "$test" "$dir/"
    else
      sed -E -e 's/^(\s*(evaluation_)?interval: [0-9]+)m$/\1s/' \
        -e 's/eval_time: ([0-9]+)m/eval_time: \1s/g' "$test" >"$dir/$(basename "$test")"
    fi
  done
}

for scale in 1 60; do
  step "window scale $scale: promtool check rules, promtool test rules"
  dir="$WORK/scale-$scale"
  prepare "$scale" "$dir"
  promtool check rules "$dir"/*-rules.yml
  (cd "$dir" && promtool test rules ./*.test.yml)
done

step "a mutant with a laxer page threshold fails the unit tests"
mutant="$WORK/mutant"
prepare 60 "$mutant"
sed -i 's/(14.4 \* 0.001)/(144 * 0.001)/g' "$mutant/checkout-rules.yml"
grep -q '(144 \* 0.001)' "$mutant/checkout-rules.yml" || fail "the mutation did not apply"
if (cd "$mutant" && promtool test rules checkout.test.yml >"$WORK/mutant.out" 2>&1); then
  fail "the unit tests passed rules whose page threshold is 10x too lax"
fi
grep -q "FAILED" "$WORK/mutant.out" || { cat "$WORK/mutant.out"; fail "the mutant failed for another reason"; }
echo "the mutant was caught"

step "live: Prometheus evaluates the scale-60 rules; ensign serves the status"
METRICS_PORT="$(ensign_free_port)"
PROMETHEUS_PORT="$(ensign_free_port)"
# Counters growing with time: 100 requests a second, half of them errors; all
# answered within 300 ms.
python3 - "$METRICS_PORT" >"$WORK/metrics.log" 2>&1 <<'EOF' &
import http.server, sys, time
start = time.monotonic()
class Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        t = time.monotonic() - start
        body = (
            "# TYPE http_requests_total counter\n"
            f'http_requests_total{{code="200"}} {50 * t}\n'
            f'http_requests_total{{code="500"}} {50 * t}\n'
            "# TYPE http_request_duration_seconds histogram\n"
            f'http_request_duration_seconds_bucket{{le="0.3"}} {100 * t}\n'
            f'http_request_duration_seconds_bucket{{le="+Inf"}} {100 * t}\n'
            f"http_request_duration_seconds_count {100 * t}\n"
            f"http_request_duration_seconds_sum {10 * t}\n"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Metrics).serve_forever()
EOF
PIDS+=($!)
cat >"$WORK/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ["$WORK/scale-60/checkout-rules.yml"]
scrape_configs:
  - job_name: checkout
    static_configs: [{targets: ["127.0.0.1:$METRICS_PORT"]}]
EOF
promtool check config "$WORK/prometheus.yml" >/dev/null
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" >"$WORK/prometheus.log" 2>&1 &
PROMETHEUS_PID=$!
PIDS+=("$PROMETHEUS_PID")
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" >/dev/null 2>&1 && break
  kill -0 "$PROMETHEUS_PID" 2>/dev/null || { cat "$WORK/prometheus.log"; fail "prometheus exited"; }
  sleep 0.1
done

export ENSIGN_ADMIN_TOKEN="slo-script-token-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
ensign_start "" --slo "$ROOT/docs/examples/slo/checkout.yml" \
  --prometheus-url "http://127.0.0.1:$PROMETHEUS_PORT" --slo-window-scale 60
trap cleanup EXIT
API="http://127.0.0.1:$ENSIGN_ADMIN_PORT/api/v1"
AUTH=(-H "Authorization: Bearer $ENSIGN_ADMIN_TOKEN")

# Prints "HTTP-status status" of an SLO's status answer.
status_of() {
  local code
  code="$(curl -sS -o "$WORK/status.json" -w '%{http_code}' "${AUTH[@]}" "$API/slos/$1/status")"
  python3 -c 'import json, sys; print(sys.argv[1], json.load(open(sys.argv[2]))["status"])' "$code" "$WORK/status.json"
}

# Waits (up to 60 s) until SLO $1's status answer is "$2".
wait_for() {
  local slo="$1" expected="$2" got=""
  for _ in $(seq 1 120); do
    got="$(status_of "$slo")"
    [[ "$got" == "$expected" ]] && { echo "$slo: $got"; cat "$WORK/status.json"; echo; return 0; }
    sleep 0.5
  done
  cat "$WORK/status.json" >&2
  fail "$slo: expected \"$expected\", last answer \"$got\""
}

wait_for checkout-availability "200 critical"
python3 - "$WORK/status.json" <<'EOF'
import json, sys
status = json.load(open(sys.argv[1]))
assert status["windowScale"] == 60, status
assert status["objective"] == 99.9 and status["errorBudget"] == 0.001, status
assert list(status["burnRates"]) == ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"], status
# 50 % errors against a 0.1 % budget: a burn rate of 500.
assert 400 < status["burnRates"]["5m"] < 600, status
EOF
wait_for checkout-latency "200 ok"

# An SLO stored through the API, whose series Prometheus does not have.
curl -fsS -X PUT "${AUTH[@]}" --data-binary @- "$API/slos/search-availability" >/dev/null <<'EOF'
version: prometheus/v1
service: search
slos:
  - name: availability
    objective: 99.5
    sli: {raw: {error_ratio_query: "avg_over_time(search:error_ratio[{{.window}}])"}}
    alerting: {name: SearchAvailability}
EOF
wait_for search-availability "200 no-data"
[[ "$(status_of no-such-slo)" == "404 unknown" ]] || fail "an unknown SLO is not 404 with status unknown"
# File SLOs are read-only.
code="$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE "${AUTH[@]}" "$API/slos/checkout-latency")"
[[ "$code" == 409 ]] || fail "deleting a file SLO answered $code, not 409"

kill -TERM "$PROMETHEUS_PID"
wait "$PROMETHEUS_PID" 2>/dev/null || true
wait_for checkout-availability "200 unreachable"

echo
echo "slo-rules: all checks passed"
