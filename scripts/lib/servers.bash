# Hermetic `soulchat up` servers for the scripts that test the running system (conformance,
# test-web, test-api). Source it after setting `root` and `tool` (the script's name, for
# messages); it makes `$work` (removed at exit, with every server stopped) and builds nothing:
# call `build_soulchat` for `$bin`.
#
#   start_server NAME PORT [VAR=VALUE...]   `soulchat up` on 127.0.0.1:PORT in its own process
#                                           group: its own nats-server child, SQLite in a fresh
#                                           data dir, no Redis, its admin listener on a free
#                                           port; VAR=VALUE are extra settings
#   wait_ready NAME URL PID                 until URL/readyz answers 200 (fails after 60 s, or
#                                           when the server exits, with its log)
# shellcheck shell=bash

work=$(mktemp -d "${TMPDIR:-/tmp}/soulchat-$tool.XXXXXX")
server_pids=()

print_server_logs() {
  local log
  for log in "$work"/*.log; do
    [ -s "$log" ] || continue
    echo "---- $(basename "$log" .log): soulchat up log (last 100 lines) ----" >&2
    tail -n 100 "$log" >&2
    echo "---- end of log ----" >&2
  done
}

# stop_server PID: SIGTERM to its process group (it and its nats-server child), SIGKILL after 10 s.
stop_server() {
  kill -TERM -- "-$1" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 -- "-$1" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL -- "-$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# shellcheck disable=SC2317  # called by the EXIT trap
stop_servers() {
  local pid
  for pid in "${server_pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${server_pids[@]}"; do stop_server "$pid"; done
  rm -rf "$work"
}
trap stop_servers EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The HTTP status of a GET (0 when nothing answers; no curl needed).
http_status() {
  python3 - "$1" <<'PY'
import sys, urllib.request, urllib.error
direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
try:
    with direct.open(sys.argv[1], timeout=2) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(0)
PY
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Builds the debug `soulchat` (and installs the nats-server it starts) and sets `bin`.
build_soulchat() {
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/soulchat/target}"
  "$root/scripts/install-build-deps"
  "$root/scripts/install-nats-server"
  cargo build --bin soulchat
  bin="$CARGO_TARGET_DIR/debug/soulchat"
  [[ "$bin" = /* ]] || bin="$root/$bin"
}

start_server() {
  local name=$1 port=$2
  shift 2
  mkdir -p "$work/$name" # kept when a server of that name starts again
  env -u NATS_URL -u REDIS_URL -u SOULCHAT_CORS_ORIGINS \
    -u SOULCHAT_USER_DATABASE_URL -u SOULCHAT_PROFILE_DATABASE_URL \
    -u SOULCHAT_CHAT_DATABASE_URL -u SOULCHAT_NOTIFICATION_DATABASE_URL \
    SOULCHAT_DATA_DIR="$work/$name" SOULCHAT_HTTP_ADDR="127.0.0.1:$port" SOULCHAT_METRICS_ADDR=127.0.0.1:0 \
    "$@" setsid "$bin" up </dev/null >"$work/$name.log" 2>&1 &
  server_pids+=($!)
}

wait_ready() {
  local name=$1 url=$2 pid=$3 deadline=$((SECONDS + 60)) status
  until [ "$(http_status "$url/readyz")" = 200 ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      status=0
      wait "$pid" || status=$?
      echo "$tool: the $name soulchat up exited (status $status) before it was ready" >&2
      print_server_logs
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$tool: the $name soulchat up was not ready (GET $url/readyz) within 60 s" >&2
      print_server_logs
      exit 1
    fi
    sleep 0.25
  done
}
