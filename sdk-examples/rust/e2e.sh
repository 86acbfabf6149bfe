#!/usr/bin/env bash
# End-to-end test of the Rust example against a live `ensign serve`.
#
# 1. installs protoc (+ the well-known .proto files) when missing: the
#    open-feature-flagd crate compiles flagd's protos in its build script;
# 2. builds Ensign (scripts/lib/ensign.sh) and this example (target/ here);
# 3. serves a temporary copy of flags.json and runs `cargo test` against it.
#
# Idempotent; with everything installed and built it takes a few seconds.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../../scripts/lib/ensign.sh
source "$ROOT/scripts/lib/ensign.sh"

say() { printf 'rust e2e: %s\n' "$*" >&2; }
started=$SECONDS

# --- protoc --------------------------------------------------------------------
# protobuf-compiler alone is not enough: the build also needs
# google/protobuf/struct.proto, which is in libprotobuf-dev.
if ! command -v protoc >/dev/null || [[ ! -f /usr/include/google/protobuf/struct.proto ]]; then
  say "installing protoc (protobuf-compiler libprotobuf-dev)"
  export DEBIAN_FRONTEND=noninteractive
  pkgs=(protobuf-compiler libprotobuf-dev)
  if ! apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null; then
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null
  fi
fi

# --- build ---------------------------------------------------------------------
say "building ensign"
ensign_build
say "building the example"
export CARGO_TARGET_DIR="$HERE/target"  # only cargo runs below; ensign_build is done
(cd "$HERE" && cargo test --locked --quiet --test e2e --no-run)

# --- serve a temporary copy of flags.json and test --------------------------------
work="$(mktemp -d -t ensign-rust-e2e.XXXXXX)"
cp "$HERE/flags.json" "$work/flags.json"
cleanup() { ensign_stop; rm -rf "$work"; }
trap cleanup EXIT
ensign_start "$work/flags.json"
trap cleanup EXIT  # ensign_start set its own trap

say "ensign serving $work/flags.json on 127.0.0.1:$ENSIGN_PORT"
status=0
(cd "$HERE" && FLAGD_HOST=127.0.0.1 FLAGD_PORT="$ENSIGN_PORT" ENSIGN_FLAGS_FILE="$work/flags.json" \
  cargo test --locked --test e2e -- --test-threads=1 --nocapture) || status=$?
if [[ $status -ne 0 ]]; then
  say "FAILED; ensign log:"; tail -n 50 "$ENSIGN_LOG" >&2
fi
say "done in $((SECONDS - started)) s"
exit $status
