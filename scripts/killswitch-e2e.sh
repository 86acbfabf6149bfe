#!/usr/bin/env bash
# Kill switch, end to end, with real Prometheus and Alertmanager (Debian packages `prometheus`
# and `prometheus-alertmanager`, installed by scripts/install-system-packages.sh).
#
# Starts, on loopback only and each on a free port: two `ensign serve` replicas sharing a fresh
# PostgreSQL database (created on the server at 127.0.0.1:5432, user postgres, and dropped at the
# end), the demo checkout service (crates/ensign-demo) reading its flag from replica 1's OFREP
# port, Alertmanager (group_wait 0s, group_interval 1s, a webhook receiver calling replica 1's
# /api/v1/integrations/alertmanager with a bearer token) and Prometheus (scraping the demo and
# both replicas' management /metrics every second, with the rules `ensign slo rules` prints for
# docs/examples/slo/checkout-demo.yml at --window-scale 60). Then
# experiments/killswitch/drive.py puts a steady bounded load on the demo and asserts every step:
# baseline error rate low -> bad release -> burn-rate page alert firing -> Alertmanager calls
# Ensign -> flag served DISABLED on both replicas -> demo back on its safe path at its baseline
# error rate; a wrong token gets 401 and changes nothing; a repeated delivery acts once. It
# prints p50/p99 of each step's latency over the runs (docs/benchmarks.md, "Kill switch").
# It also checks the configuration snippets of docs/kill-switch.md (amtool, promtool).
#
#   scripts/killswitch-e2e.sh                 RUNS=3 (CI), debug build
#   RUNS=20 ENSIGN_PROFILE=release scripts/killswitch-e2e.sh     figures for the docs
#   KS_BUILD=0                                use the binaries already built
#   KS_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres   where to create the database
#   KS_KEEP=1                                 keep the scratch folder (configs, logs, results)
#   KS_ENFORCE_TARGETS=1                      fail when the propagation targets are missed
#
# Every process is started and stopped (SIGTERM, by PID) by this script; the scratch folder is
# under target/ (ignored by git). Bounded: each wait has a timeout, the load loop a deadline.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${RUNS:-3}"
window_scale="${KS_WINDOW_SCALE:-60}"
server_url="${KS_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
spec="$root/docs/examples/slo/checkout-demo.yml"
guide="$root/docs/kill-switch.md"

[[ "$runs" =~ ^[0-9]+$ ]] && (( runs >= 1 && runs <= 50 )) ||
  { echo "killswitch-e2e: RUNS must be 1 to 50" >&2; exit 1; }
for tool in cargo curl python3 psql prometheus prometheus-alertmanager promtool amtool timeout; do
  command -v "$tool" >/dev/null ||
    { echo "killswitch-e2e: $tool is required (bash scripts/install-system-packages.sh)" >&2; exit 1; }
done

# shellcheck source=lib/ensign.sh
source "$root/scripts/lib/ensign.sh"
demo_bin="$root/target/$ENSIGN_PROFILE/ensign-demo"

mkdir -p "$root/target"
scratch="$(mktemp -d "$root/target/killswitch-e2e.XXXXXX")"
database="ensign_killswitch_$(date +%s)_$$"
database_created=0
pids=()
logs=()
status=1

stop_pid() {
  local pid="$1"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}

cleanup() {
  local pid log
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  ensign_stop
  if [[ $status != 0 ]]; then
    for log in "${logs[@]}"; do
      [[ -f "$log" ]] || continue
      echo "---- last lines of $(basename "$log")" >&2
      tail -n 25 "$log" >&2
    done
  fi
  for log in "${logs[@]}"; do
    [[ "$log" == "$scratch"/* ]] || { cp "$log" "$scratch/" 2>/dev/null || true; rm -f "$log"; }
  done
  if [[ $database_created == 1 ]]; then
    psql "$server_url" -qAtc "drop database if exists $database with (force)" >/dev/null 2>&1 ||
      echo "killswitch-e2e: could not drop database $database" >&2
  fi
  if [[ "${KS_KEEP:-0}" == 1 ]]; then
    echo "killswitch-e2e: kept $scratch"
  else
    rm -rf "$scratch"
  fi
}
trap cleanup EXIT

wait_ready() { # NAME URL SECONDS
  local name="$1" url="$2" deadline=$((SECONDS + $3))
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    (( SECONDS < deadline )) || { echo "killswitch-e2e: $name not ready at $url" >&2; return 1; }
    sleep 0.1
  done
}

if [[ "${KS_BUILD:-1}" == 1 ]]; then
  echo "== building ensign and ensign-demo ($ENSIGN_PROFILE)"
  flag=()
  [[ "$ENSIGN_PROFILE" == release ]] && flag=(--release)
  (cd "$root" && timeout 1800 cargo build --quiet --locked "${flag[@]}" -p ensign -p ensign-demo)
fi
[[ -x "$ENSIGN_BIN" && -x "$demo_bin" ]] || { echo "killswitch-e2e: build first (KS_BUILD=1)" >&2; exit 1; }

admin_token="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
alertmanager_token="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"

echo "== Prometheus rules for $(basename "$spec") (window scale $window_scale)"
"$ENSIGN_BIN" slo rules "$spec" --window-scale "$window_scale" >"$scratch/rules.yml"
promtool check rules "$scratch/rules.yml" >/dev/null
grep -q 'ensign_flag: *checkout-v2' "$scratch/rules.yml" ||
  { echo "killswitch-e2e: the page alert carries no ensign_flag label" >&2; exit 1; }

echo "== the guide's snippets (docs/kill-switch.md)"
# Each fenced block right after a `<!-- check: NAME -->` line is written to NAME and checked.
python3 - "$guide" "$scratch/guide" <<'PY'
import os, re, sys
text = open(sys.argv[1], encoding="utf-8").read()
os.makedirs(sys.argv[2], exist_ok=True)
found = re.findall(r"<!-- check: (\S+) -->\s*```[a-z]*\n(.*?)```", text, re.S)
if not found:
    sys.exit("no checked snippets in the guide")
for name, body in found:
    open(os.path.join(sys.argv[2], name), "w", encoding="utf-8").write(body)
    print("  " + name)
PY
printf '%s' "$alertmanager_token" >"$scratch/guide/ensign-alertmanager-token"
sed -i "s#/etc/alertmanager/ensign-alertmanager-token#$scratch/guide/ensign-alertmanager-token#" \
  "$scratch/guide/alertmanager.yml"
amtool check-config "$scratch/guide/alertmanager.yml" >/dev/null
sed -i "s#/etc/prometheus/rules/checkout-slo.yml#$scratch/rules.yml#" "$scratch/guide/prometheus.yml"
promtool check config "$scratch/guide/prometheus.yml" >/dev/null
cmp -s "$scratch/guide/checkout-demo.yml" "$spec" ||
  { echo "killswitch-e2e: the guide's SLO spec differs from $spec" >&2; exit 1; }

echo "== database $database"
psql "$server_url" -qAtc "create database $database" >/dev/null
database_created=1
database_url="${server_url%/*}/$database"
timeout 60 "$ENSIGN_BIN" migrate --database-url "$database_url" >/dev/null

echo "== two replicas"
export ENSIGN_START_DATABASE_URL="$database_url" ENSIGN_ADMIN_TOKEN="$admin_token"
export ENSIGN_ALERTMANAGER_TOKEN="$alertmanager_token"
declare -A replica
for n in 1 2; do
  ensign_start "" --environment production
  trap cleanup EXIT # ensign_start sets its own EXIT trap; put ours back
  logs+=("$ENSIGN_LOG")
  replica[$n.ofrep]="$ENSIGN_OFREP_PORT"
  replica[$n.admin]="$ENSIGN_ADMIN_PORT"
  replica[$n.management]="$ENSIGN_MANAGEMENT_PORT"
  echo "  replica-$n: pid $ENSIGN_PID, OFREP $ENSIGN_OFREP_PORT, admin $ENSIGN_ADMIN_PORT, management $ENSIGN_MANAGEMENT_PORT"
done
unset ENSIGN_ADMIN_TOKEN ENSIGN_ALERTMANAGER_TOKEN

echo "== demo app on replica 1's OFREP port"
demo_port="$(ensign_free_port)"
"$demo_bin" --listen "127.0.0.1:$demo_port" --ofrep-url "http://127.0.0.1:${replica[1.ofrep]}" \
  --bad-error-rate 0.5 --bad-latency-rate 0.1 --bad-latency-ms 100 >"$scratch/demo.log" 2>&1 &
pids+=($!)
logs+=("$scratch/demo.log")
wait_ready demo "http://127.0.0.1:$demo_port/readyz" 20

echo "== Alertmanager"
am_port="$(ensign_free_port)"
printf '%s' "$alertmanager_token" >"$scratch/alertmanager-token"
cat >"$scratch/alertmanager.yml" <<EOF
route:
  receiver: ensign
  group_by: [alertname, sloth_id, severity]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: ensign
    webhook_configs:
      - url: http://127.0.0.1:${replica[1.admin]}/api/v1/integrations/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: $scratch/alertmanager-token
EOF
amtool check-config "$scratch/alertmanager.yml" >/dev/null
prometheus-alertmanager --config.file="$scratch/alertmanager.yml" --storage.path="$scratch/alertmanager" \
  --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address= >"$scratch/alertmanager.log" 2>&1 &
pids+=($!)
logs+=("$scratch/alertmanager.log")
wait_ready alertmanager "http://127.0.0.1:$am_port/-/ready" 20

echo "== Prometheus"
prom_port="$(ensign_free_port)"
cat >"$scratch/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [$scratch/rules.yml]
alerting:
  alertmanagers:
    - static_configs: [{targets: ["127.0.0.1:$am_port"]}]
scrape_configs:
  - job_name: checkout
    static_configs: [{targets: ["127.0.0.1:$demo_port"]}]
  - job_name: ensign
    static_configs: [{targets: ["127.0.0.1:${replica[1.management]}", "127.0.0.1:${replica[2.management]}"]}]
EOF
promtool check config "$scratch/prometheus.yml" >/dev/null
prometheus --config.file="$scratch/prometheus.yml" --storage.tsdb.path="$scratch/prometheus" \
  --web.listen-address="127.0.0.1:$prom_port" --rules.alert.resend-delay=1s \
  >"$scratch/prometheus.log" 2>&1 &
pids+=($!)
logs+=("$scratch/prometheus.log")
wait_ready prometheus "http://127.0.0.1:$prom_port/-/ready" 30

echo "== $runs runs"
enforce=()
[[ "${KS_ENFORCE_TARGETS:-0}" == 1 ]] && enforce=(--enforce-targets)
timeout $((120 + runs * 90)) python3 "$root/experiments/killswitch/drive.py" \
  --admin "http://127.0.0.1:${replica[1.admin]}" --admin-token "$admin_token" \
  --alertmanager-token "$alertmanager_token" \
  --ofrep "http://127.0.0.1:${replica[1.ofrep]}" --ofrep "http://127.0.0.1:${replica[2.ofrep]}" \
  --management "http://127.0.0.1:${replica[1.management]}" \
  --management "http://127.0.0.1:${replica[2.management]}" \
  --demo "http://127.0.0.1:$demo_port" --prometheus "http://127.0.0.1:$prom_port" \
  --runs "$runs" --max-seconds $((120 + runs * 90)) --out "$scratch/results.json" "${enforce[@]}"
for n in 1 2; do
  curl -fsS "http://127.0.0.1:${replica[$n.management]}/metrics" |
    grep -E '^ensign_killswitch_propagation_seconds_(sum|count)' | sed "s/^/  replica-$n: /" || true
done
for pid in "${pids[@]}"; do
  kill -0 "$pid" 2>/dev/null || { echo "killswitch-e2e: process $pid exited early" >&2; exit 1; }
done
echo "machine: $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo))," \
  "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr), profile $ENSIGN_PROFILE"
status=0
echo "killswitch-e2e: passed"
