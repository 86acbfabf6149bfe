#!/usr/bin/env bash
# Runs the peer benchmarks (flagd-core JS and the Rust flagd-evaluation-engine) on the shared
# scenarios in benches/scenarios/, and prints their figures. Run by hand, not by CI.
#
#   scripts/peer-bench.sh [node|rust]...      (default: both)
#   PEER_BENCH_RUNS=2 scripts/peer-bench.sh   (repeat each benchmark; default 1)
#
# Installs only into experiments/peer-bench/node/node_modules and
# experiments/peer-bench/rust/target. Each step is bounded with `timeout`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
peer="$root/experiments/peer-bench"
runs="${PEER_BENCH_RUNS:-1}"
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(node rust)

for tool in python3 timeout; do
  command -v "$tool" >/dev/null || { echo "peer-bench: $tool is required" >&2; exit 1; }
done

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
export ENSIGN_FLAGS_10K="$scratch/flags-10k.json"
python3 "$root/benches/scenarios/gen_10k.py" "$ENSIGN_FLAGS_10K"

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1)"

run_node() {
  command -v npm >/dev/null || { echo "peer-bench: node/npm are required" >&2; return 1; }
  cd "$peer/node"
  if [[ ! -d node_modules/@openfeature/flagd-core ]]; then
    timeout 300 npm ci --no-audit --no-fund
  fi
  for ((r = 1; r <= runs; r++)); do
    echo "== node flagd-core, run $r/$runs"
    timeout 300 node bench.js --flags10k "$ENSIGN_FLAGS_10K"
  done
}

run_rust() {
  command -v cargo >/dev/null || { echo "peer-bench: cargo is required" >&2; return 1; }
  export CARGO_TARGET_DIR="$peer/rust/target"
  local manifest="$peer/rust/Cargo.toml"
  timeout 1200 cargo bench --locked --manifest-path "$manifest" --bench peer --no-run
  for ((r = 1; r <= runs; r++)); do
    echo "== rust flagd-evaluation-engine, run $r/$runs"
    rm -rf "$CARGO_TARGET_DIR/criterion"
    timeout 600 cargo bench --locked --manifest-path "$manifest" --bench peer >"$scratch/criterion.log" 2>&1 ||
      { tail -40 "$scratch/criterion.log" >&2; return 1; }
    grep -m1 '^rule-flag matched' "$scratch/criterion.log" || true
    python3 "$peer/rust/summarize.py" "$CARGO_TARGET_DIR/criterion"
  done
}

for target in "${targets[@]}"; do
  case "$target" in
    node) (run_node) ;;
    rust) (run_rust) ;;
    *) echo "peer-bench: unknown target '$target' (node|rust)" >&2; exit 2 ;;
  esac
done
