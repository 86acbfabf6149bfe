#!/usr/bin/env bash
# Fan-out and OFREP benchmark of one release `ensign serve` on 127.0.0.1, with the generator
# in experiments/fanout/ on the same machine. Results are written up by hand in
# docs/benchmarks.md ("Fan-out and OFREP").
#
#  fanout: 1,000 flagd.sync.v1 SyncFlags streams (over 50 HTTP/2 connections, then over
#          1,000 connections: one stream each) plus 1,000 OFREP SSE subscribers (one HTTP/1.1
#          connection each); FANOUT_CHANGES rewrites of the flag file (atomic rename),
#          FANOUT_GAP_MS apart; per subscriber, the time from the rename to its next message;
#          missed deliveries; server VmRSS/VmHWM. A fresh server for every run, so that VmHWM
#          belongs to that run.
#  ofrep:  POST /ofrep/v1/evaluate/flags/ofrep-flag over 64 HTTP/1.1 keep-alive connections,
#          one request in flight each, the shared 1,024 contexts; warm-up, then a measured
#          window.
#
#   scripts/fanout-bench.sh
#   FANOUT_MODES="fanout" scripts/fanout-bench.sh          (default "fanout ofrep")
#   FANOUT_LAYOUTS="50" scripts/fanout-bench.sh            (HTTP/2 connections carrying the
#                                                           sync streams; default "50 1000")
#   FANOUT_RUNS=2 FANOUT_CHANGES=20 FANOUT_GAP_MS=1000 FANOUT_SYNC_STREAMS=1000 FANOUT_SSE=1000
#   OFREP_RUNS=2 OFREP_CONNECTIONS=64 OFREP_WARMUP=3 OFREP_DURATION=20
#   FANOUT_MAX_LOAD=1.5 FANOUT_LOAD_WAIT=60   (before measuring, wait up to 60 s in all for the
#                                              1-minute load average to drop below 1.5)
#   FANOUT_BASE=experiments/fanout/minimal-base.json
#                     (the flag document is this file plus the benchmark's two flags; default
#                      benches/scenarios/flags.json, 104 flags; minimal-base.json has none)
#   FANOUT_PERF=1     (perf record the server, DWARF call graphs, during the first run of each
#                      kind; the perf overhead inflates those runs' latencies)
#   FANOUT_OUT=DIR    (keep results.jsonl, the run logs and perf data in DIR)
#   FANOUT_BUILD=0    (use the binaries already built)
#
# Bounded: the script refuses settings whose measured part would take 5 minutes or more
# (builds excluded; with cached builds the defaults take 2.5-3.5 minutes), and every step runs
# under `timeout`. Only 127.0.0.1; stops every server it started.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench_dir="$root/experiments/fanout"
bench_bin="$bench_dir/target/release/ensign-fanout"
base="${FANOUT_BASE:-$root/benches/scenarios/flags.json}"

modes="${FANOUT_MODES:-fanout ofrep}"
layouts="${FANOUT_LAYOUTS:-50 1000}"
runs="${FANOUT_RUNS:-2}"
changes="${FANOUT_CHANGES:-20}"
gap_ms="${FANOUT_GAP_MS:-1000}"
sync_streams="${FANOUT_SYNC_STREAMS:-1000}"
sse="${FANOUT_SSE:-1000}"
ofrep_runs="${OFREP_RUNS:-2}"
ofrep_connections="${OFREP_CONNECTIONS:-64}"
ofrep_warmup="${OFREP_WARMUP:-3}"
ofrep_duration="${OFREP_DURATION:-20}"
threads="${FANOUT_THREADS:-2}"
max_load="${FANOUT_MAX_LOAD:-1.5}"
load_wait="${FANOUT_LOAD_WAIT:-60}"
perf_on="${FANOUT_PERF:-0}"

for tool in cargo curl python3 timeout awk; do
  command -v "$tool" >/dev/null || { echo "fanout-bench: $tool is required" >&2; exit 1; }
done
if [[ "$perf_on" == 1 ]] && ! command -v perf >/dev/null; then
  echo "fanout-bench: FANOUT_PERF=1 needs perf" >&2; exit 1
fi
for n in runs changes gap_ms sync_streams sse ofrep_runs ofrep_connections ofrep_warmup ofrep_duration load_wait; do
  [[ "${!n}" =~ ^[0-9]+$ ]] || { echo "fanout-bench: $n must be a whole number" >&2; exit 1; }
done

# Planned seconds: per fan-out run, start-up + opening + settling (about 12 s) + the changes;
# per OFREP run, warm-up + window + 2; plus the load-average wait.
fanout_run_s=$(( 12 + (changes * gap_ms + 999) / 1000 ))
planned=$load_wait
[[ " $modes " == *" fanout "* ]] && planned=$(( planned + $(wc -w <<<"$layouts") * runs * fanout_run_s ))
[[ " $modes " == *" ofrep "* ]] && planned=$(( planned + 5 + ofrep_runs * (ofrep_warmup + ofrep_duration + 2) ))
if (( planned >= 300 )); then
  echo "fanout-bench: about $planned s planned; keep it under 300 s" >&2; exit 1
fi

# Every subscriber is a socket on both sides; the server and the generator inherit this.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile="$(ulimit -n)"

out="${FANOUT_OUT:-}"
scratch="$(mktemp -d)"
[[ -n "$out" ]] || out="$scratch"
mkdir -p "$out"
results="$out/results.jsonl"
: >"$results"

export ENSIGN_PROFILE=release
# shellcheck source=lib/ensign.sh
source "$root/scripts/lib/ensign.sh"
perf_pid=""
cleanup() {
  if [[ -n "$perf_pid" ]] && kill -0 "$perf_pid" 2>/dev/null; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
  fi
  ensign_stop
  rm -rf "$scratch"
}
trap cleanup EXIT

if [[ "${FANOUT_BUILD:-1}" == 1 ]]; then
  echo "== building ensign (release) and the benchmark (release)"
  # What ensign_build does for ENSIGN_PROFILE=release, under a timeout.
  (cd "$root" && timeout 1800 cargo build --quiet --release -p ensign)
  timeout 1800 cargo build --quiet --release --manifest-path "$bench_dir/Cargo.toml"
fi
[[ -x "$ENSIGN_BIN" && -x "$bench_bin" ]] || { echo "fanout-bench: build first (FANOUT_BUILD=1)" >&2; exit 1; }

load1() { awk '{ print $1 }' /proc/loadavg; }
loadavg() { awk '{ print $1 ", " $2 ", " $3 }' /proc/loadavg; }
wait_budget=$load_wait
wait_for_quiet() {
  local waited=0
  while (( wait_budget > 0 )) && awk -v l="$(load1)" -v m="$max_load" 'BEGIN { exit !(l > m) }'; do
    (( waited == 0 )) && echo "load average $(loadavg) is above $max_load; waiting (up to $wait_budget s)"
    sleep 5
    waited=$(( waited + 5 )); wait_budget=$(( wait_budget - 5 ))
  done
  (( waited == 0 )) || echo "waited $waited s; load average now $(loadavg)"
}

start_perf() {  # start_perf NAME SECONDS [DELAY]: sample the server for SECONDS after DELAY
  local name="$1" seconds="$2" delay="${3:-0}"
  # The release build has no frame pointers: unwind with DWARF, at a rate that keeps the
  # data to a few hundred MB at most.
  (sleep "$delay"; exec timeout $((seconds + 15)) perf record -F 249 --call-graph dwarf,8192 -q -o "$out/perf-$name.data" \
    -p "$ENSIGN_PID" -- sleep "$seconds") >"$out/perf-$name.log" 2>&1 &
  perf_pid=$!
}
stop_perf() {
  if [[ -n "$perf_pid" ]]; then
    wait "$perf_pid" 2>/dev/null || true
    perf_pid=""
    echo "perf data: $1 (perf report -i FILE --no-children --stdio)"
  fi
}

# Appends the generator's JSON line, with the run, the load averages and the fd limit.
record() {  # record RUN LOAD_BEFORE < generator output
  python3 -c '
import json, sys
lines = [l for l in sys.stdin.read().splitlines() if l.startswith("{")]
if not lines:
    sys.exit("fanout-bench: the generator printed no result line")
row = json.loads(lines[-1])
row["run"] = int(sys.argv[1]); row["load_before"] = sys.argv[2]; row["nofile"] = int(sys.argv[3])
row["load_after"] = ", ".join(open("/proc/loadavg").read().split()[:3])  # read after the run
print(json.dumps(row))' "$1" "$2" "$nofile" >>"$results"
}

cpu_model="$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
echo "machine: $(nproc) CPUs ($cpu_model), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr); open files limit $nofile"
echo "flag document: $base + fanout-flag + ofrep-flag"
run_start=$SECONDS
wait_for_quiet

flags_dir="$scratch/flags"
mkdir -p "$flags_dir"
flags="$flags_dir/flags.json"

if [[ " $modes " == *" fanout "* ]]; then
  for layout in $layouts; do
    need=$(( 2 * (layout + sse) + 256 ))
    if (( nofile < need )); then
      echo "fanout-bench: skipping $layout sync connections: open files limit $nofile < $need" >&2
      continue
    fi
    for ((r = 1; r <= runs; r++)); do
      label="sync over $layout connections"
      echo
      echo "== fanout: $sync_streams sync streams over $layout HTTP/2 connections + $sse SSE, run $r/$runs; load average $(loadavg)"
      before="$(loadavg)"
      timeout 30 "$bench_bin" init --flags-file "$flags" --base "$base"
      ensign_start "$flags"
      trap cleanup EXIT # ensign_start sets its own EXIT trap; put ours back
      echo "ensign pid $ENSIGN_PID: sync $ENSIGN_SYNC_PORT, OFREP $ENSIGN_OFREP_PORT, management $ENSIGN_MANAGEMENT_PORT"
      if [[ "$perf_on" == 1 && $r == 1 ]]; then
        start_perf "fanout-$layout" $(( 10 + changes * gap_ms / 1000 ))
      fi
      timeout $(( fanout_run_s + 90 )) "$bench_bin" fanout --flags-file "$flags" --base "$base" \
        --sync-port "$ENSIGN_SYNC_PORT" --ofrep-port "$ENSIGN_OFREP_PORT" \
        --management-port "$ENSIGN_MANAGEMENT_PORT" --server-pid "$ENSIGN_PID" \
        --sync-streams "$sync_streams" --sync-connections "$layout" --sse "$sse" \
        --changes "$changes" --gap "${gap_ms}ms" --threads "$threads" --label "$label" \
        | tee "$out/fanout-$layout-$r.txt" | record "$r" "$before"
      grep -v '^{' "$out/fanout-$layout-$r.txt" || true
      echo "load average after: $(loadavg)"
      stop_perf "$out/perf-fanout-$layout.data"
      kill -0 "$ENSIGN_PID" 2>/dev/null || { echo "fanout-bench: ensign exited" >&2; cat "$ENSIGN_LOG" >&2; exit 1; }
      ensign_stop
    done
  done
fi

if [[ " $modes " == *" ofrep "* ]]; then
  timeout 30 "$bench_bin" init --flags-file "$flags" --base "$base"
  ensign_start "$flags"
  trap cleanup EXIT
  echo
  echo "ensign pid $ENSIGN_PID: OFREP $ENSIGN_OFREP_PORT"
  for ((r = 1; r <= ofrep_runs; r++)); do
    echo
    echo "== ofrep: $ofrep_connections connections, run $r/$ofrep_runs; load average $(loadavg)"
    before="$(loadavg)"
    if [[ "$perf_on" == 1 && $r == 1 ]]; then
      start_perf ofrep "$ofrep_duration" "$ofrep_warmup"
    fi
    timeout $(( ofrep_warmup + ofrep_duration + 60 )) "$bench_bin" ofrep \
      --ofrep-port "$ENSIGN_OFREP_PORT" --server-pid "$ENSIGN_PID" \
      --connections "$ofrep_connections" --warmup "${ofrep_warmup}s" \
      --duration "${ofrep_duration}s" --threads "$threads" \
      | tee "$out/ofrep-$r.txt" | record "$r" "$before"
    grep -v '^{' "$out/ofrep-$r.txt" || true
    echo "load average after: $(loadavg)"
    stop_perf "$out/perf-ofrep.data"
    kill -0 "$ENSIGN_PID" 2>/dev/null || { echo "fanout-bench: ensign exited" >&2; cat "$ENSIGN_LOG" >&2; exit 1; }
  done
  ensign_stop
fi

echo
echo "runs took $((SECONDS - run_start)) s"
echo
python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
fan = [r for r in rows if r["mode"] == "fanout"]
if fan:
    print("| sync streams / HTTP/2 conns | SSE | run | kind | deliveries | p50 ms | p90 ms | p99 ms | max ms | missed | RSS connected / after / VmHWM MB | CPU ms per change: server / generator | cores: other / steal | load avg before |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- |")
    for r in fan:
        c = r["cpu_during_changes"]
        n = max(r["changes"], 1)
        per = lambda x: "n/a" if x is None else f"{x * 1000 / n:.0f}"
        for kind in ("sync", "sse", "all"):
            k = r[kind]
            missed = k.get("missed", r["missed_total"])
            print(f"| {r['sync_streams']} / {r['sync_connections']} | {r['sse_streams']} | {r['run']} | {kind} "
                  f"| {k.get('count', 0)} | {k.get('p50_ms', 0):.1f} | {k.get('p90_ms', 0):.1f} | {k.get('p99_ms', 0):.1f} "
                  f"| {k.get('max_ms', 0):.1f} | {missed} | {r['rss_connected_mb']} / {r['rss_after_mb']} / {r['vmhwm_mb']} "
                  f"| {per(c['server_cpu_s'])} / {per(c['generator_cpu_s'])} | {c['other_cores']} / {c['steal_cores']} "
                  f"| {r['load_before']} |")
    print()
of = [r for r in rows if r["mode"] == "ofrep"]
if of:
    print("| OFREP run | evaluations/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | cores: server / generator / other / steal | VmHWM MB | load avg before |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |")
    for r in of:
        c = r["cpu"]
        print(f"| {r['run']} | {r['throughput_per_s']:,.0f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} "
              f"| {r['p999_ms']:.2f} | {r['max_ms']:.2f} | {r['errors']} "
              f"| {c['server_cores']} / {c['generator_cores']} / {c['other_cores']} / {c['steal_cores']} "
              f"| {r['vmhwm_mb']} | {r['load_before']} |")
    print()
ok = True
for r in fan:
    good = r["all"].get("p99_ms", 1e9) <= 100 and r["missed_total"] == 0 and (r["vmhwm_mb"] or 1e9) <= 150 and r["ready"]
    ok &= good
    print(f"fanout {r['label']} run {r['run']}: p99 {r['all'].get('p99_ms')} ms, missed {r['missed_total']}, VmHWM {r['vmhwm_mb']} MB -> {'meets' if good else 'MISSES'} p99 <= 100 ms, 0 missed, <= 150 MB")
for r in of:
    good = r["throughput_per_s"] >= 25000 and r["p99_ms"] <= 5 and r["errors"] == 0
    ok &= good
    print(f"ofrep run {r['run']}: {r['throughput_per_s']:,.0f}/s, p99 {r['p99_ms']} ms, errors {r['errors']} -> {'meets' if good else 'MISSES'} >= 25,000/s, p99 <= 5 ms")
EOF
[[ -z "${FANOUT_OUT:-}" ]] || echo "results: $results"
