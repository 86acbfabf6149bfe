#!/usr/bin/env bash
# Propagation benchmark: commit → served on two replicas sharing one PostgreSQL database.
#
# Builds `ensign` (release) and experiments/propagation/ (release), creates a fresh database
# on the PostgreSQL server, starts two `ensign serve --database-url …` replicas on free
# loopback ports, and runs the benchmark: it seeds a flag through ensign-storage, then
# toggles it PROP_ITERATIONS times, one commit at a time, and times the change event on each
# replica's OFREP SSE stream and flagd EventStream (Connect JSON), from the commit time the
# storage stamps on the change. It also scrapes each replica's ensign_propagation_seconds
# histogram. Results are written up by hand in docs/benchmarks.md ("Propagation across
# replicas"); the benchmark prints a table ready for it and one JSON line.
#
#   scripts/propagation-bench.sh
#   PROP_ITERATIONS=500 PROP_GAP_MS=10 scripts/propagation-bench.sh
#   PROP_POSTGRES_URL=postgres://user@host:5432/postgres scripts/propagation-bench.sh
#                                   (default postgres://postgres@127.0.0.1:5432/postgres;
#                                    the database is created there and dropped at the end)
#   PROP_OUT=DIR scripts/propagation-bench.sh     (keep the summary and the replicas' logs)
#   PROP_BUILD=0 scripts/propagation-bench.sh     (use the binaries already built)
#
# Bounded: at most 2,000 commits and a 300 s deadline for the measured run, every step under
# `timeout`; stops both replicas and drops the database whatever happens. Loopback only.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench_dir="$root/experiments/propagation"
bench_bin="$bench_dir/target/release/ensign-propagation"

iterations="${PROP_ITERATIONS:-200}"
warmup="${PROP_WARMUP:-5}"
gap_ms="${PROP_GAP_MS:-25}"
deadline="${PROP_DEADLINE:-120}"
server_url="${PROP_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

for tool in cargo curl python3 timeout; do
  command -v "$tool" >/dev/null || { echo "propagation-bench: $tool is required" >&2; exit 1; }
done
[[ "$iterations" =~ ^[0-9]+$ ]] && (( iterations >= 1 && iterations <= 2000 )) ||
  { echo "propagation-bench: PROP_ITERATIONS must be 1 to 2000" >&2; exit 1; }
[[ "$deadline" =~ ^[0-9]+$ ]] && (( deadline >= 10 && deadline <= 300 )) ||
  { echo "propagation-bench: PROP_DEADLINE must be 10 to 300 (seconds)" >&2; exit 1; }

out="${PROP_OUT:-}"
scratch="$(mktemp -d)"
[[ -n "$out" ]] || out="$scratch"
mkdir -p "$out"

export ENSIGN_PROFILE=release
# shellcheck source=lib/ensign.sh
source "$root/scripts/lib/ensign.sh"

database="ensign_propagation_$(date +%s)_$$"
database_created=0
logs=()
cleanup() {
  ensign_stop
  local log
  for log in "${logs[@]}"; do
    [[ -f "$log" ]] && cp "$log" "$out/" 2>/dev/null || true
    rm -f "$log"
  done
  if [[ $database_created == 1 ]]; then
    timeout 30 "$bench_bin" drop-database --server-url "$server_url" --name "$database" ||
      echo "propagation-bench: could not drop database $database" >&2
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT

if [[ "${PROP_BUILD:-1}" == 1 ]]; then
  echo "== building ensign (release) and the benchmark (release)"
  (cd "$root" && timeout 1800 cargo build --quiet --release -p ensign)
  timeout 1800 cargo build --quiet --release --manifest-path "$bench_dir/Cargo.toml"
fi
[[ -x "$ENSIGN_BIN" && -x "$bench_bin" ]] || { echo "propagation-bench: build first (PROP_BUILD=1)" >&2; exit 1; }

echo "== creating database $database"
database_url="$(timeout 30 "$bench_bin" create-database --server-url "$server_url" --name "$database")"
database_created=1
timeout 60 "$ENSIGN_BIN" migrate --database-url "$database_url" >/dev/null

export ENSIGN_START_DATABASE_URL="$database_url"
replicas=()
for name in replica-1 replica-2; do
  ensign_start "" --environment production
  trap cleanup EXIT # ensign_start sets its own EXIT trap; put ours back
  logs+=("$ENSIGN_LOG")
  echo "$name: pid $ENSIGN_PID, evaluation $ENSIGN_PORT, OFREP $ENSIGN_OFREP_PORT, management $ENSIGN_MANAGEMENT_PORT"
  replicas+=(--replica "$name:$ENSIGN_OFREP_PORT:$ENSIGN_PORT:$ENSIGN_MANAGEMENT_PORT")
done

echo "== $iterations commits (+$warmup warm-up), ${gap_ms} ms apart"
status=0
timeout $((deadline + 60)) "$bench_bin" run --database-url "$database_url" "${replicas[@]}" \
  --environment production --iterations "$iterations" --warmup "$warmup" --gap-ms "$gap_ms" \
  --deadline-s "$deadline" | tee "$out/summary.txt" || status=$?
for pid in "${ENSIGN_PIDS[@]}"; do
  kill -0 "$pid" 2>/dev/null || { echo "propagation-bench: replica $pid exited" >&2; status=1; }
done
echo "machine: $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo))," \
  "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr)" | tee -a "$out/summary.txt"
exit "$status"
