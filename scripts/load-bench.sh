#!/usr/bin/env bash
# Load benchmark of the evaluation API: gRPC ResolveBoolean and Connect JSON against a
# release `ensign serve` on 127.0.0.1, with the load generator in experiments/load/ on the
# same machine. Also reads the server's RSS when idle after start-up and after the load.
# Results are written up by hand in docs/benchmarks.md ("Evaluation API under load").
#
#   scripts/load-bench.sh
#   LOAD_RUNS=2 LOAD_DURATION=20 LOAD_WARMUP=3 LOAD_CONNECTIONS=64 scripts/load-bench.sh
#   LOAD_TARGETS="grpc" scripts/load-bench.sh      (default: "grpc connect")
#   LOAD_PERF=1 scripts/load-bench.sh              (perf record -g the server, first run of each target)
#   LOAD_OUT=DIR scripts/load-bench.sh             (keep the JSON lines and perf data in DIR)
#   LOAD_BUILD=0 scripts/load-bench.sh             (use the binaries already built)
#   LOAD_THREADS=1 scripts/load-bench.sh           (load generator runtime threads; default 2)
#   TOKIO_WORKER_THREADS=1 scripts/load-bench.sh   (passed on to ensign, whose tokio runtime reads it)
#
# Durations are in seconds. With the defaults the measured part takes about 2 minutes
# (2 targets x 2 runs x 23 s, plus settling); every step is bounded with `timeout`, and
# the script refuses settings whose runs would take 5 minutes or more.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
load_dir="$root/experiments/load"
flags="$load_dir/flags.json"

runs="${LOAD_RUNS:-2}"
duration="${LOAD_DURATION:-20}"
warmup="${LOAD_WARMUP:-3}"
connections="${LOAD_CONNECTIONS:-64}"
threads="${LOAD_THREADS:-2}"
flag="${LOAD_FLAG:-load-flag}"
targets="${LOAD_TARGETS:-grpc connect}"
perf_on="${LOAD_PERF:-0}"

for tool in cargo curl python3 timeout; do
  command -v "$tool" >/dev/null || { echo "load-bench: $tool is required" >&2; exit 1; }
done
if [[ "$perf_on" == 1 ]] && ! command -v perf >/dev/null; then
  echo "load-bench: LOAD_PERF=1 needs perf" >&2; exit 1
fi

n_targets=$(wc -w <<<"$targets")
planned=$(( n_targets * runs * (warmup + duration + 2) + 10 ))
if (( planned >= 300 )); then
  echo "load-bench: $planned s of runs planned; keep it under 300 s" >&2; exit 1
fi

out="${LOAD_OUT:-}"
scratch="$(mktemp -d)"
[[ -n "$out" ]] || out="$scratch"
mkdir -p "$out"
results="$out/results.jsonl"
: >"$results"

export ENSIGN_PROFILE=release
# shellcheck source=lib/ensign.sh
source "$root/scripts/lib/ensign.sh"
cleanup() {
  ensign_stop
  rm -rf "$scratch"
}
trap cleanup EXIT

load_bin="$load_dir/target/release/ensign-load"
if [[ "${LOAD_BUILD:-1}" == 1 ]]; then
  echo "== building ensign (release) and the load generator (release)"
  # What ensign_build does for ENSIGN_PROFILE=release, under a timeout.
  (cd "$root" && timeout 1800 cargo build --quiet --release -p ensign)
  timeout 1800 cargo build --quiet --release --manifest-path "$load_dir/Cargo.toml"
fi
[[ -x "$ENSIGN_BIN" && -x "$load_bin" ]] || { echo "load-bench: build first (LOAD_BUILD=1)" >&2; exit 1; }

rss() {  # prints "VmHWM=… VmRSS=… RssAnon=… RssFile=…" of the server, in kB as the kernel reports them
  awk '/^VmRSS:|^VmHWM:|^RssAnon:|^RssFile:/ { sub(":", "", $1); printf "%s=%s kB ", $1, $2 } END { print "" }' \
    "/proc/$ENSIGN_PID/status"
}

cpu_busy() {  # "busy irq+softirq steal" jiffies of the whole machine (all cores), from /proc/stat
  awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $7 + $8, $9 }' /proc/stat
}
server_cpu() {  # user + system jiffies of the server
  sed 's/.*) //' "/proc/$ENSIGN_PID/stat" | awk '{ print $12 + $13 }'
}
hz="$(getconf CLK_TCK)"

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
echo "flags: $flags ($(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["flags"]))' "$flags") flags); measured flag: $flag"
run_start=$SECONDS
ensign_start "$flags"
echo "ensign pid $ENSIGN_PID on 127.0.0.1:$ENSIGN_PORT (management $ENSIGN_MANAGEMENT_PORT)," \
  "$(ls "/proc/$ENSIGN_PID/task" | wc -l) threads, TOKIO_WORKER_THREADS=${TOKIO_WORKER_THREADS:-unset (one runtime worker per core)}"
echo "load generator: $connections connections, $threads runtime threads (LOAD_THREADS)"
sleep 2
idle_rss="$(rss)"
echo "idle RSS after start-up: $idle_rss"

for target in $targets; do
  for ((r = 1; r <= runs; r++)); do
    echo
    echo "== $target, run $r/$runs; before: $(uptime | sed 's/.*load average/load average/')"
    perf_pid=""
    if [[ "$perf_on" == 1 && $r == 1 ]]; then
      # Sample the server during the measured window only.
      (sleep "$warmup"; exec timeout $((duration + 10)) perf record -g -q -o "$out/perf-$target.data" \
        -p "$ENSIGN_PID" -- sleep "$duration") >"$out/perf-$target.log" 2>&1 &
      perf_pid=$!
    fi
    read -r busy0 irq0 steal0 < <(cpu_busy); server0=$(server_cpu); t0=$(date +%s.%N)
    timeout $((warmup + duration + 60)) "$load_bin" --target "$target" --port "$ENSIGN_PORT" \
      --connections "$connections" --duration "${duration}s" --warmup "${warmup}s" \
      --flag "$flag" --threads "$threads" | tee "$scratch/run.txt"
    read -r busy1 irq1 steal1 < <(cpu_busy); server1=$(server_cpu); t1=$(date +%s.%N)
    load="$(uptime | sed 's/.*load average: *//')"
    echo "after: load average $load"
    # CPU over the generator's lifetime, in cores: the server, the generator, everything else.
    grep '^{' "$scratch/run.txt" | python3 -c '
import json, sys
line = json.loads(sys.stdin.read())
r, load, hz, wall = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[5]) - float(sys.argv[4])
b0, i0, st0, s0, b1, i1, st1, s1 = map(float, sys.argv[6:])
cores = lambda jiffies: round(jiffies / hz / wall, 2)
line["run"] = int(r); line["load_average_after"] = load
line["machine_cores_busy"] = cores(b1 - b0)  # user+nice+system+irq+softirq, steal excluded
line["server_cores"] = cores(s1 - s0)
line["client_cores"] = round(line["client_cpu_s"] / wall, 2)
# Loopback TCP runs largely in softirq, which the kernel charges partly to the interrupted
# process and partly to no process, so "rest" = machine - server - generator includes some of it.
line["irq_cores"] = cores(i1 - i0)
line["steal_cores"] = cores(st1 - st0)
line["other_cores"] = round(line["machine_cores_busy"] - line["server_cores"] - line["client_cores"], 2)
print("CPU (cores, of %d): server %.2f, load generator %.2f, rest of the machine %.2f "
      "(irq+softirq on the machine %.2f), steal %.2f" % (
    __import__("os").cpu_count(), line["server_cores"], line["client_cores"], line["other_cores"],
    line["irq_cores"], line["steal_cores"]), file=sys.stderr)
print(json.dumps(line))' "$r" "$load" "$hz" "$t0" "$t1" \
      "$busy0" "$irq0" "$steal0" "$server0" "$busy1" "$irq1" "$steal1" "$server1" >>"$results"
    if [[ -n "$perf_pid" ]]; then
      wait "$perf_pid" || true
      echo "perf data: $out/perf-$target.data (perf report -i FILE --no-children --stdio)"
    fi
    kill -0 "$ENSIGN_PID" 2>/dev/null || { echo "load-bench: ensign exited" >&2; cat "$ENSIGN_LOG" >&2; exit 1; }
  done
done

sleep 2
after_rss="$(rss)"
echo
echo "idle RSS after start-up: $idle_rss"
echo "idle RSS after the load: $after_rss (VmHWM is the peak)"
echo "runs took $((SECONDS - run_start)) s"
echo
python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| target | run | evaluations/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | cores: server / generator / rest | load avg after |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
for r in rows:
    print(f"| {r['target']} | {r['run']} | {r['throughput_per_s']:,.0f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} "
          f"| {r['p99_ms']:.2f} | {r['p999_ms']:.2f} | {r['max_ms']:.2f} | {r['errors']} "
          f"| {r['server_cores']:.2f} / {r['client_cores']:.2f} / {r['other_cores']:.2f} | {r['load_average_after']} |")
EOF
[[ -z "${LOAD_OUT:-}" ]] || echo "results: $results"
