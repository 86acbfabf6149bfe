#!/usr/bin/env bash
# Runs every end-to-end suite against a live `ensign serve`: each SDK example's
# e2e.sh (real OpenFeature providers as clients), then the flagd testbed's
# @rpc and @in-process scenarios. Each suite installs its own clients into its
# own folder.
# Usage: scripts/e2e.sh [NAME...]   (default all)
#   NAME: a sdk-examples folder, or `testbed` (both modes), `testbed-rpc`,
#   `testbed-in-process`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

suites=("$@")
if [[ ${#suites[@]} -eq 0 ]]; then
  for script in "$ROOT"/sdk-examples/*/e2e.sh; do
    suites+=("$(basename "$(dirname "$script")")")
  done
  suites+=(testbed)
fi

(cd "$ROOT" && cargo build --quiet -p ensign)
passed=0
failed=()
for suite in "${suites[@]}"; do
  printf '\n==> e2e: %s\n' "$suite"
  started=$SECONDS
  if [[ "$suite" == testbed ]]; then
    command=(bash "$ROOT/scripts/testbed.sh" all)
  elif [[ "$suite" == testbed-rpc || "$suite" == testbed-in-process ]]; then
    command=(bash "$ROOT/scripts/testbed.sh" "${suite#testbed-}")
  else
    command=(bash "$ROOT/sdk-examples/$suite/e2e.sh")
  fi
  if "${command[@]}"; then
    passed=$((passed + 1))
    echo "e2e: $suite passed in $((SECONDS - started)) s"
  else
    failed+=("$suite")
    echo "e2e: $suite FAILED after $((SECONDS - started)) s"
  fi
done
echo
echo "e2e suites: ${passed} passed, ${#failed[@]} failed${failed:+ (${failed[*]})}"
[[ ${#failed[@]} -eq 0 ]]
