#!/usr/bin/env bash
# Fuzzes the engine with cargo-fuzz: target `parse_and_evaluate` in fuzz/.
#
# Usage:
#   scripts/fuzz.sh                    # 1,000,000 executions
#   FUZZ_RUNS=50000 scripts/fuzz.sh    # fewer
#   scripts/fuzz.sh -len_control=0    # extra arguments go to libFuzzer
#
# Environment:
#   FUZZ_RUNS      executions to run (default 1000000)
#   FUZZ_MAX_LEN   largest input in bytes (default 4096)
#   FUZZ_TIMEOUT   seconds one input may take before it counts as a crash (default 30)
#   FLAGD_TESTBED  flagd-testbed checkout to seed from (default ../shared/flagd-testbed)
#
# Needs the nightly toolchain (`cargo +nightly`). cargo-fuzz is installed into
# .tools/ at the repository root when it is missing. The committed seed corpus
# (fuzz/corpus/parse_and_evaluate/) is refreshed from the testbed when the
# testbed is there; inputs libFuzzer finds go to fuzz/work-corpus/ and crashes
# to fuzz/artifacts/, both ignored by git. Prints the execution and crash
# counts at the end and exits non-zero when libFuzzer found a crash.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=parse_and_evaluate
runs=${FUZZ_RUNS:-1000000}
max_len=${FUZZ_MAX_LEN:-4096}
timeout=${FUZZ_TIMEOUT:-30}
testbed=${FLAGD_TESTBED:-$repo/../shared/flagd-testbed}
seeds=$repo/fuzz/corpus/$target
work=$repo/fuzz/work-corpus/$target
artifacts=$repo/fuzz/artifacts/$target

export PATH=$repo/.tools/bin:$PATH
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "installing cargo-fuzz into $repo/.tools" >&2
    cargo install cargo-fuzz --locked --root "$repo/.tools"
fi

# A context that the testbed's rules read, appended after a NUL byte (the
# target's separator between document and context).
context='{"targetingKey":"user-1","email":"ballmer@macrosoft.com","age":30,"num":4,"tier":"gold","id":"abc","version":"2.0.0","time":1700000000,"color":"yellow","user":{"name":"jack"},"fn":"Sulisław","ln":"Świętopełk","locale":"pl","bucket":{"a":[1,2.5,"x"]}}'

# Writes one seed per testbed flag (small enough for FUZZ_MAX_LEN), each alone
# and with the context, plus two YAML documents in block style.
seed_corpus() {
    mkdir -p "$seeds"
    local files=("$testbed"/flags/*.json "$testbed"/evaluator/flags/testkit-flags.json)
    local file base key name document
    for file in "${files[@]}"; do
        [[ -f $file ]] || continue
        base=$(basename "$file" .json)
        if ! command -v jq >/dev/null 2>&1; then
            cp "$file" "$seeds/$base.json"
            continue
        fi
        while IFS= read -r key; do
            name=$(printf '%s' "$key" | tr -c 'A-Za-z0-9_.-' '_')
            document=$(jq -c --arg key "$key" \
                '{flags: {($key): .flags[$key]}} + (if has("$evaluators") then {"$evaluators": .["$evaluators"]} else {} end) + (if has("metadata") then {metadata} else {} end)' \
                "$file")
            printf '%s' "$document" >"$seeds/$base--$name.json"
            printf '%s\0%s' "$document" "$context" >"$seeds/$base--$name.with-context"
        done < <(jq -r '.flags | keys[]' "$file")
    done
    cat >"$seeds/block-style.yaml" <<'YAML'
flags:
  rollout:
    state: ENABLED
    variants:
      on: true
      off: false
    defaultVariant: off
    targeting:
      fractional:
        - [on, 10]
        - [off, 90]
metadata:
  flagSetId: yaml-set
YAML
    cat >"$seeds/anchors.yaml" <<'YAML'
$evaluators:
  is_gold: &gold
    "==": [{var: tier}, gold]
flags:
  tiered:
    state: ENABLED
    variants: &variants {a: "A", b: "B"}
    defaultVariant: a
    targeting:
      if: [{$ref: is_gold}, b, null]
  copy:
    state: DISABLED
    variants: *variants
    defaultVariant: b
    targeting: {if: [*gold, a]}
YAML
}

if [[ -d $testbed ]]; then
    seed_corpus
else
    echo "no testbed at $testbed: using the committed seed corpus only" >&2
fi
mkdir -p "$work" "$artifacts"

log=$(mktemp -t fuzz-$target.XXXXXX.log)
status=0
(cd "$repo/fuzz" && cargo +nightly fuzz run "$target" "$work" "$seeds" -- \
    -runs="$runs" -max_len="$max_len" -timeout="$timeout" -print_final_stats=1 \
    -dict="$repo/fuzz/$target.dict" \
    -artifact_prefix="$artifacts/" "$@") 2>&1 | tee "$log" || status=$?

executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
per_second=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
crashes=$(grep -c 'Test unit written to' "$log" || true)
echo
echo "executions: ${executions:-unknown} (${per_second:-?}/s)"
if ((crashes > 0)); then
    echo "crashes: $crashes (inputs in $artifacts)"
else
    echo "crashes: 0"
fi
echo "log: $log"
exit "$status"
