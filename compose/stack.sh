#!/usr/bin/env bash
# Usage: compose/stack.sh run|up|down|cluster-up [N]|cluster-down
#   run           start the services (compose/services.sh, run profile), migrate, run
#                 place-api and place-worker in the foreground; Ctrl-C stops everything
#   up | down     the same in the background (logs in .state/logs/) | stop it all
#   cluster-up    services, migrate, N api instances on ports 3011.. (N from the
#                 argument or $N, default 3), one worker, and nginx on
#                 127.0.0.1:3000 in front of them (logs in .state/cluster/logs/, .state/nginx/logs/)
#   cluster-down  stop the cluster and the services
# PLACE_BIN: directory of the binaries (default bin); PLACE_HTTP_PORT: api port of
# run/up (default 3001); CLUSTER_PORT: nginx port (default 3000).
# USE_EXTERNAL_SERVICES=1 uses your own Redis/PostgreSQL/RabbitMQ (see services.sh).
set -euo pipefail
shopt -s nullglob

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BIN=${PLACE_BIN:-bin}
STATE=${STATE_DIR:-.state}
[[ $STATE == /* ]] || STATE=$ROOT/$STATE
LOGS=$STATE/logs
CLUSTER=$STATE/cluster
NGINX=$STATE/nginx
PORT=${PLACE_HTTP_PORT:-3001}
CLUSTER_PORT=${CLUSTER_PORT:-3000}

# many WebSocket clients need many descriptors (api, nginx)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

say() { printf 'stack: %s\n' "$*"; }
die() { say "error: $*" >&2; exit 1; }
services() { compose/services.sh "$1" --profile run; }

# shellcheck source=compose/proc.sh
source "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

# stop_pid FILE COMM: TERM, wait, KILL after 10 s
stop_pid() {
  local pid i
  if pid=$(pid_of "$1" "$2"); then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then say "$2 (pid $pid) did not stop in 10 s; killing it"; kill -KILL "$pid"; fi
    say "stopped $2 (pid $pid)"
  fi
  rm -f "$1"
}

# spawn LOG PIDFILE [VAR=VALUE...] PROGRAM: run detached, output appended to LOG
spawn() {
  local log=$1 pidfile=$2
  shift 2
  setsid env "$@" >>"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

# wait_http PORT PIDFILE LOG: wait until the api answers /health/ready
wait_http() {
  local end=$((SECONDS + ${API_TIMEOUT:-30}))
  until curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$1/health/ready" 2>/dev/null; do
    pid_of "$2" place-api >/dev/null || { say "place-api exited while starting; see $3" >&2; return 1; }
    ((SECONDS < end)) || { say "place-api on port $1 not ready after ${API_TIMEOUT:-30}s; see $3" >&2; return 1; }
    sleep 0.2
  done
}

# services, the PLACE_* env for them, migrations
prepare() {
  [[ -x $BIN/place-api && -x $BIN/place-worker ]] || die "$BIN/place-api and $BIN/place-worker missing: run make"
  services start
  eval "$(services env)"
  "$BIN/place-api" migrate || die "migration failed"
}

# stop the services unless the other stack (up/run vs cluster) still uses them
stop_services() {
  local f
  for f in "$STATE"/api.pid "$STATE"/worker.pid "$CLUSTER"/*.pid; do
    if pid_of "$f" place-api >/dev/null || pid_of "$f" place-worker >/dev/null; then
      say "services left running: still used by $f"
      return 0
    fi
  done
  services stop
}

cmd_run() {
  local api worker
  ! pid_of "$STATE/api.pid" place-api >/dev/null || die "place is already running (make down stops it)"
  prepare
  trap 'finish 0' INT TERM HUP
  "$BIN/place-api" &
  api=$!
  echo "$api" >"$STATE/api.pid"
  "$BIN/place-worker" &
  worker=$!
  echo "$worker" >"$STATE/worker.pid"
  wait_http "$PORT" "$STATE/api.pid" "the output above" || finish 1
  echo "place is running: open http://127.0.0.1:$PORT/"
  say "Ctrl-C stops it"
  wait -n "$api" "$worker" || true
  say "place-api or place-worker exited; stopping everything"
  finish 1
}

finish() {
  trap '' INT TERM HUP
  stop_pid "$STATE/api.pid" place-api
  stop_pid "$STATE/worker.pid" place-worker
  wait || true
  stop_services
  exit "$1"
}

cmd_up() {
  if pid_of "$STATE/api.pid" place-api >/dev/null && pid_of "$STATE/worker.pid" place-worker >/dev/null; then
    say "already running: http://127.0.0.1:$PORT/ (logs in $LOGS/)"
    return
  fi
  prepare
  mkdir -p "$LOGS"
  pid_of "$STATE/api.pid" place-api >/dev/null || spawn "$LOGS/api.log" "$STATE/api.pid" "$BIN/place-api"
  pid_of "$STATE/worker.pid" place-worker >/dev/null ||
    spawn "$LOGS/worker.log" "$STATE/worker.pid" "$BIN/place-worker"
  wait_http "$PORT" "$STATE/api.pid" "$LOGS/api.log" || die "start failed (make down stops the rest)"
  pid_of "$STATE/worker.pid" place-worker >/dev/null ||
    die "place-worker exited; see $LOGS/worker.log (make down stops the rest)"
  echo "place is running: open http://127.0.0.1:$PORT/"
  say "logs: $LOGS/api.log and $LOGS/worker.log; make down stops it"
}

cmd_down() {
  stop_pid "$STATE/api.pid" place-api
  stop_pid "$STATE/worker.pid" place-worker
  stop_services
}

cmd_cluster_up() {
  local n=${1:-${N:-3}} k f pid conf servers="" user=""
  [[ $n =~ ^[1-9][0-9]?$ ]] || die "N must be 1..99, not '$n'"
  prepare
  mkdir -p "$CLUSTER/logs" "$NGINX/logs" "$NGINX/tmp"
  # browsers reach the instances through nginx
  export PLACE_WS_ALLOWED_ORIGINS=${PLACE_WS_ALLOWED_ORIGINS:-http://127.0.0.1:$CLUSTER_PORT,http://localhost:$CLUSTER_PORT}
  for f in "$CLUSTER"/api-*.pid; do # instances of an earlier, larger cluster
    k=${f##*/api-}
    ((${k%.pid} <= n)) || stop_pid "$f" place-api
  done
  for ((k = 1; k <= n; k++)); do
    pid_of "$CLUSTER/api-$k.pid" place-api >/dev/null ||
      spawn "$CLUSTER/logs/api-$k.log" "$CLUSTER/api-$k.pid" \
        PLACE_HTTP_PORT=$((3010 + k)) PLACE_INSTANCE_NAME=api-$k "$BIN/place-api"
    servers+="        server 127.0.0.1:$((3010 + k));"$'\n'
  done
  pid_of "$CLUSTER/worker.pid" place-worker >/dev/null ||
    spawn "$CLUSTER/logs/worker.log" "$CLUSTER/worker.pid" "$BIN/place-worker"
  for ((k = 1; k <= n; k++)); do
    wait_http $((3010 + k)) "$CLUSTER/api-$k.pid" "$CLUSTER/logs/api-$k.log" ||
      die "start failed (make cluster-down stops the rest)"
  done

  # as root, nginx's workers would run as nobody, who may not reach the state dir
  ((EUID != 0)) || user="user root;"
  conf=$(<compose/nginx-cluster.conf.in)
  conf=${conf//@USER@/$user}
  conf=${conf//@LISTEN@/127.0.0.1:$CLUSTER_PORT}
  printf '%s\n' "${conf//@SERVERS@/${servers%$'\n'}}" >"$NGINX/nginx.conf"
  local nginx=(/usr/sbin/nginx -p "$NGINX/" -c "$NGINX/nginx.conf" -e logs/error.log)
  "${nginx[@]}" -t -q || die "bad nginx config $NGINX/nginx.conf"
  if pid=$(pid_of "$NGINX/nginx.pid" nginx); then
    kill -HUP "$pid" # reload: the instance list may have changed
  else
    "${nginx[@]}" || die "nginx did not start; see $NGINX/logs/error.log"
  fi
  for ((k = 0; k < 50; k++)); do
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$CLUSTER_PORT/health/ready" 2>/dev/null && break
    ((k < 49)) || die "nginx on port $CLUSTER_PORT does not answer; see $NGINX/logs/error.log"
    sleep 0.2
  done
  say "cluster of $n api instances (ports 3011-$((3010 + n))) and a worker is running"
  echo "place is running: open http://127.0.0.1:$CLUSTER_PORT/"
  say "logs in $CLUSTER/logs/ and $NGINX/logs/; make cluster-down stops it"
}

cmd_cluster_down() {
  local f
  stop_pid "$NGINX/nginx.pid" nginx
  for f in "$CLUSTER"/api-*.pid; do stop_pid "$f" place-api; done
  stop_pid "$CLUSTER/worker.pid" place-worker
  stop_services
}

case ${1:-} in
  run | up | down) "cmd_$1" ;;
  cluster-up) cmd_cluster_up "${2:-}" ;;
  cluster-down) cmd_cluster_down ;;
  *) sed -n '2,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
esac
