# Shared by the e2e scripts: build Ensign once and run it in the background on
# free loopback ports. Source this file, then:
#
#   ensign_build                      # cargo build -p ensign (debug unless ENSIGN_PROFILE=release)
#   ensign_start FLAGS_FILE [ARGS...] # starts `ensign serve`, waits for /readyz
#   ...  $ENSIGN_PORT $ENSIGN_MANAGEMENT_PORT $ENSIGN_SYNC_PORT $ENSIGN_OFREP_PORT
#        $ENSIGN_ADMIN_PORT $ENSIGN_LOG
#                                     # (all five ports are passed to ensign; ARGS may
#                                     #  override --sync-port / --ofrep-port / --admin-port)
#   ensign_stop                       # SIGTERM, waits for exit (also runs on EXIT)
#
# FLAGS_FILE may be "" to serve no file (only the database). By default each start
# gets a SQLite database of its own; with ENSIGN_START_DATABASE_URL set (e.g. a
# postgres:// URL) every start uses that database instead, so several replicas can
# share it. ensign_start may be called more than once: the variables above then
# describe the latest instance (save them in between), and ensign_stop stops all.
#
# Nothing listens beyond 127.0.0.1.

ENSIGN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ENSIGN_PROFILE="${ENSIGN_PROFILE:-debug}"
ENSIGN_BIN="${ENSIGN_BIN:-${CARGO_TARGET_DIR:-$ENSIGN_ROOT/target}/$ENSIGN_PROFILE/ensign}" # may be preset to run another build
ENSIGN_PID=""
ENSIGN_PIDS=()

ensign_build() {
  local flag=""
  [[ "$ENSIGN_PROFILE" == "release" ]] && flag="--release"
  (cd "$ENSIGN_ROOT" && cargo build --quiet $flag -p ensign)
}

ensign_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

ensign_start() {
  local flags="$1"; shift
  ENSIGN_PORT="$(ensign_free_port)"
  ENSIGN_MANAGEMENT_PORT="$(ensign_free_port)"
  ENSIGN_SYNC_PORT="$(ensign_free_port)"
  ENSIGN_OFREP_PORT="$(ensign_free_port)"
  ENSIGN_ADMIN_PORT="$(ensign_free_port)"
  ENSIGN_LOG="$(mktemp -t ensign-log.XXXXXX)"
  export ENSIGN_PORT ENSIGN_MANAGEMENT_PORT ENSIGN_SYNC_PORT ENSIGN_OFREP_PORT ENSIGN_ADMIN_PORT ENSIGN_LOG
  # The sync, OFREP and admin ports are passed too, unless the caller chose its
  # own (ensign refuses an option given twice).
  local extra=() arg want_sync=1 want_ofrep=1 want_admin=1
  for arg in "$@"; do
    case "$arg" in
      -g | --sync-port | --sync-port=*) want_sync=0 ;;
      -r | --ofrep-port | --ofrep-port=*) want_ofrep=0 ;;
      --admin-port | --admin-port=*) want_admin=0 ;;
    esac
  done
  if [[ $want_sync == 1 ]]; then extra+=(--sync-port "$ENSIGN_SYNC_PORT"); fi
  if [[ $want_ofrep == 1 ]]; then extra+=(--ofrep-port "$ENSIGN_OFREP_PORT"); fi
  if [[ $want_admin == 1 ]]; then extra+=(--admin-port "$ENSIGN_ADMIN_PORT"); fi
  ENSIGN_DATA_DIR="$(mktemp -d -t ensign-data.XXXXXX)"
  export ENSIGN_DATA_DIR
  if [[ -n "$flags" ]]; then extra+=(--uri "file:$flags"); fi
  "$ENSIGN_BIN" serve --bind 127.0.0.1 \
    --database-url "${ENSIGN_START_DATABASE_URL:-sqlite://$ENSIGN_DATA_DIR/ensign.db}" \
    --port "$ENSIGN_PORT" --management-port "$ENSIGN_MANAGEMENT_PORT" "${extra[@]}" "$@" >"$ENSIGN_LOG" 2>&1 &
  ENSIGN_PID=$!
  ENSIGN_PIDS+=("$ENSIGN_PID")
  trap ensign_stop EXIT
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$ENSIGN_MANAGEMENT_PORT/readyz" >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$ENSIGN_PID" 2>/dev/null; then
      echo "ensign exited during start-up:" >&2; cat "$ENSIGN_LOG" >&2; return 1
    fi
    sleep 0.1
  done
  echo "ensign did not become ready in 10 s:" >&2; cat "$ENSIGN_LOG" >&2; return 1
}

ensign_stop() {
  local pid
  for pid in "${ENSIGN_PIDS[@]}" $ENSIGN_PID; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      wait "$pid" 2>/dev/null || true
    fi
  done
  ENSIGN_PID=""
  ENSIGN_PIDS=()
}
