#!/usr/bin/env bash
# Run a command against a private moto (mock AWS) server:
#   scripts/with-moto.sh CMD [ARGS...]
# Starts .venv/bin/moto_server on a free 127.0.0.1 port (log in target/moto-PORT.log,
# named by MOTO_LOG for CMD), points the AWS SDK environment at it, runs CMD, and
# always stops the server.
# Exits with CMD's exit code.
set -euo pipefail

[[ $# -gt 0 ]] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
"$ROOT/scripts/venv.sh"
mkdir -p "$ROOT/target"

MOTO_PID="" CMD_PID="" PORT=""
INT_AT_ENTRY="$(trap -p INT)"   # non-empty if our caller made us ignore Ctrl-C

stop_moto() {
  [[ -n $MOTO_PID ]] || return 0
  kill "$MOTO_PID" 2>/dev/null || true
  for _ in {1..50}; do kill -0 "$MOTO_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$MOTO_PID" 2>/dev/null || true
  wait "$MOTO_PID" 2>/dev/null || true
  echo "with-moto: moto_server on port $PORT stopped" >&2
  MOTO_PID=""
}
# INT/TERM: pass the signal on to CMD if it runs (we then exit with its status),
# otherwise exit now. EXIT always stops the server.
on_signal() {
  if [[ -n $CMD_PID ]]; then kill -"$1" "$CMD_PID" 2>/dev/null || true; else exit $((128 + $2)); fi
}
trap stop_moto EXIT
trap 'on_signal INT 2' INT
trap 'on_signal TERM 15' TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
answers() {  # any HTTP response, even an error status, means the server is up
  python3 - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass
except Exception:
    sys.exit(1)
PY
}

# Start the server; retry with a new port if it dies early (port taken in between).
for attempt in 1 2 3; do
  PORT="$(free_port)"
  LOG="$ROOT/target/moto-$PORT.log"
  "$ROOT/.venv/bin/moto_server" -H 127.0.0.1 -p "$PORT" </dev/null >"$LOG" 2>&1 &
  MOTO_PID=$!
  deadline=$((SECONDS + 30))
  until answers "http://127.0.0.1:$PORT/moto-api/"; do
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
      wait "$MOTO_PID" 2>/dev/null || true; MOTO_PID=""; break
    fi
    if ((SECONDS >= deadline)); then
      echo "with-moto: moto_server did not answer on port $PORT within 30 s; log tail:" >&2
      tail -n 20 "$LOG" >&2
      exit 1
    fi
    sleep 0.2
  done
  [[ -n $MOTO_PID ]] && break
  echo "with-moto: moto_server exited early (attempt $attempt); log tail:" >&2
  tail -n 5 "$LOG" >&2
  [[ $attempt -lt 3 ]] || exit 1
done
echo "with-moto: moto_server up on 127.0.0.1:$PORT (pid $MOTO_PID, log target/moto-$PORT.log)" >&2

export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT"
export MOTO_LOG="$LOG"   # the demo copies it next to its other files
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN

# Run CMD in the background, keeping our stdin and (unless our caller ignores
# it) the default Ctrl-C handling, so that a signal to this script is handled
# at once rather than after CMD ends.
if [[ -z $INT_AT_ENTRY ]]; then ( trap - INT QUIT; exec "$@" ) <&0 &
else "$@" <&0 &
fi
CMD_PID=$!
set +e
wait "$CMD_PID"; rc=$?
while kill -0 "$CMD_PID" 2>/dev/null; do wait "$CMD_PID"; rc=$?; done
exit "$rc"
