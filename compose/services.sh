#!/usr/bin/env bash
# Usage: compose/services.sh start|stop|status|env [--profile run|test]
#        compose/services.sh rabbitmqctl [--profile run|test] ARGS...
#
# Private Redis, PostgreSQL 15 and RabbitMQ instances from Debian's packages,
# listening on 127.0.0.1 only, with all their state under STATE_DIR (git-ignored).
#   start        start what is not running (a live instance is reused), wait until
#                each answers, write the PLACE_* lines to STATE_DIR/env
#   stop         stop exactly what start started (by pid file), wait for exit
#   status       print each service up/down (exit 1 if one is down)
#   env          print the export lines the apps need: eval "$(compose/services.sh env)"
#   rabbitmqctl  run rabbitmqctl against this profile's node
#
# Profiles; every value can be overridden by an env var of the same name:
#   run:  STATE_DIR=.state      REDIS_PORT=16379 PG_PORT=15432 AMQP_PORT=15672 EPMD_PORT=14369 DIST_PORT=15673
#   test: STATE_DIR=.state-test REDIS_PORT=17379 PG_PORT=17432 AMQP_PORT=17672 EPMD_PORT=17369 DIST_PORT=17673
# START_TIMEOUT (seconds, default 90) bounds the wait for each service.
#
# USE_EXTERNAL_SERVICES=1: start and stop do nothing and env prints nothing; point
# config.ini or PLACE_REDIS_URL, PLACE_POSTGRES_URL, PLACE_POSTGRES_MIGRATE_URL and
# PLACE_RABBITMQ_URL at your own services.
#
# PostgreSQL refuses to run as root: as root it runs as the postgres user, and if
# that user cannot reach STATE_DIR its files go to /var/tmp/place-<hash>-<profile>/.
# Logs: STATE_DIR/redis/redis.log, <pg dir>/postgres.log, STATE_DIR/rabbitmq/log/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
usage() { sed -n '2,3s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2; }

cmd=${1:-}
(($#)) && shift
profile=run
args=()
while (($#)); do
  case $1 in
    --profile) profile=${2:-}; shift 2 || usage ;;
    --profile=*) profile=${1#*=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
case $profile in
  run) defaults=(.state 16379 15432 15672 14369 15673) ;;
  test) defaults=(.state-test 17379 17432 17672 17369 17673) ;;
  *) usage ;;
esac
STATE_DIR=${STATE_DIR:-${defaults[0]}}
REDIS_PORT=${REDIS_PORT:-${defaults[1]}}
PG_PORT=${PG_PORT:-${defaults[2]}}
AMQP_PORT=${AMQP_PORT:-${defaults[3]}}
EPMD_PORT=${EPMD_PORT:-${defaults[4]}}
DIST_PORT=${DIST_PORT:-${defaults[5]}}
START_TIMEOUT=${START_TIMEOUT:-90}
[[ $STATE_DIR == /* ]] || STATE_DIR=$ROOT/$STATE_DIR

REDIS_DIR=$STATE_DIR/redis
PG_BIN=/usr/lib/postgresql/15/bin
RMQ_DIR=$STATE_DIR/rabbitmq
RMQ_BIN=/usr/lib/rabbitmq/bin # not /usr/sbin: those su to the rabbitmq user
NODE=place-$profile@localhost
loopback='-kernel inet_dist_use_interface {127,0,0,1}'
rmq_env=(
  HOME="$RMQ_DIR/home" # the Erlang cookie lives here
  RABBITMQ_NODENAME="$NODE"
  RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  RABBITMQ_NODE_PORT="$AMQP_PORT"
  RABBITMQ_DIST_PORT="$DIST_PORT"
  ERL_EPMD_PORT="$EPMD_PORT"
  ERL_EPMD_ADDRESS=127.0.0.1
  RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia"
  RABBITMQ_LOG_BASE="$RMQ_DIR/log"
  RABBITMQ_PID_FILE="$RMQ_DIR/rabbitmq.pid"
  RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq.conf"
  RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ_DIR/advanced.config"
  RABBITMQ_CONF_ENV_FILE="$RMQ_DIR/rabbitmq-env.conf"
  RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins"
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="$loopback"
  # the CLI tools are Erlang nodes too: keep them on loopback and out of the
  # ephemeral port range (their default is 35672-35682)
  RABBITMQ_CTL_ERL_ARGS="$loopback"
  RABBITMQ_CTL_DIST_PORT_MIN=$((DIST_PORT + 1))
  RABBITMQ_CTL_DIST_PORT_MAX=$((DIST_PORT + 10))
)

say() { printf 'services(%s): %s\n' "$profile" "$*"; }
die() { say "error: $*" >&2; exit 1; }
rmq() { local tool=$1; shift; env "${rmq_env[@]}" "$RMQ_BIN/$tool" "$@"; }

# shellcheck source=compose/proc.sh
source "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

# live_or_clean FILE COMM: like pid_of, but remove FILE when it is stale (after
# waiting for a zombie to be reaped: PostgreSQL checks its lock files by pid)
live_or_clean() {
  local pid i
  pid_of "$@" && return 0
  [[ -e $1 ]] || return 1
  say "removing stale pid file $1" >&2
  pid=$(head -n1 "$1")
  if [[ $pid =~ ^[0-9]+$ ]]; then
    for ((i = 0; i < 100; i++)); do zombie "$pid" || break; sleep 0.1; done
  fi
  rm -f "$1"
  return 1
}

port_free() { # PORT NAME
  [[ -z $(ss -Hltn "sport = :$1") ]] ||
    die "$2: port $1 is in use by a process this script did not start; stop it or set another port"
}

# wait_ready NAME LOG CHECK...: poll CHECK until it succeeds (0); it returns 2
# when the process has died
wait_ready() {
  local name=$1 log=$2 end=$((SECONDS + START_TIMEOUT)) rc
  shift 2
  while :; do
    rc=0
    "$@" >/dev/null 2>&1 || rc=$?
    ((rc == 0)) && return 0
    ((rc == 2)) && die "$name exited while starting; see $log"
    ((SECONDS < end)) || die "$name not ready after ${START_TIMEOUT}s; see $log"
    sleep 0.2
  done
}

wait_gone() { # PID TENTHS_OF_A_SECOND
  local i
  for ((i = 0; i < $2; i++)); do
    alive "$1" || return 0
    sleep 0.1
  done
  return 1
}

# stop_pid NAME FILE COMM SIGNAL: signal the process named by FILE, wait for it
# to exit, KILL it after 30 s
stop_pid() {
  local pid
  if pid=$(pid_of "$2" "$3"); then
    kill "-$4" "$pid" 2>/dev/null || true
    wait_stopped "$1" "$pid"
  fi
  rm -f "$2"
}

wait_stopped() { # NAME PID
  wait_gone "$2" 300 || { say "$1 (pid $2) did not exit; killing it"; kill -KILL "$2" || true; wait_gone "$2" 50 || true; }
  say "$1 stopped (pid $2)"
}

# --- Redis -----------------------------------------------------------------
redis_check() {
  [[ -e $REDIS_DIR/redis.pid ]] && { pid_of "$REDIS_DIR/redis.pid" redis-server || return 2; }
  [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping) == PONG ]]
}

start_redis() {
  local pid
  mkdir -p "$REDIS_DIR"
  if pid=$(live_or_clean "$REDIS_DIR/redis.pid" redis-server); then
    say "redis already running (pid $pid)"
  else
    port_free "$REDIS_PORT" redis
    cat >"$REDIS_DIR/redis.conf" <<EOF
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize yes
pidfile "$REDIS_DIR/redis.pid"
logfile "$REDIS_DIR/redis.log"
dir "$REDIS_DIR"
appendonly yes
appendfsync everysec
maxmemory-policy noeviction
EOF
    redis-server "$REDIS_DIR/redis.conf" || die "redis did not start; see $REDIS_DIR/redis.log"
  fi
  wait_ready redis "$REDIS_DIR/redis.log" redis_check
  [[ -n $pid ]] || say "redis started on 127.0.0.1:$REDIS_PORT (pid $(head -n1 "$REDIS_DIR/redis.pid"))"
}

# --- PostgreSQL ------------------------------------------------------------
# as root, PostgreSQL's files belong to (and its programs run as) postgres
as_pg() {
  if ((EUID == 0)); then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# PG_BASE: STATE_DIR/postgres, or the fallback in /var/tmp when the postgres user
# cannot reach STATE_DIR or the path is too long for a unix socket (108 bytes);
# wherever a cluster already exists wins
pg_locate() {
  local fallback
  fallback=/var/tmp/place-$(printf %s "$STATE_DIR" | md5sum | cut -c1-12)-$profile
  PG_BASE=$STATE_DIR/postgres
  if [[ ! -e $PG_BASE/data/PG_VERSION ]] && { [[ -e $fallback/data/PG_VERSION ]] ||
    ((${#PG_BASE} > 80)) || { ((EUID == 0)) && ! runuser -u postgres -- test -x "$STATE_DIR"; }; }; then
    PG_BASE=$fallback
  fi
  PG_DATA=$PG_BASE/data
  PG_LOG=$PG_BASE/postgres.log
}

pg_sql() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" "$@"; }

start_postgres() {
  local pid
  [[ $PG_BASE == "$STATE_DIR"/* ]] ||
    say "postgres cannot use $STATE_DIR (the postgres user cannot reach it); using $PG_BASE"
  mkdir -p "$PG_BASE"
  ((EUID != 0)) || chown postgres:postgres "$PG_BASE"
  if [[ ! -e $PG_DATA/PG_VERSION ]]; then
    say "postgres: initdb in $PG_DATA"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U place_owner --auth=trust -E UTF8 --locale=C \
      >"$PG_BASE/initdb.log" 2>&1 || die "initdb failed; see $PG_BASE/initdb.log"
    echo "include_if_exists = 'place.conf'" | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
  fi
  as_pg mkdir -p "$PG_BASE/run"
  # shared_buffers: PostgreSQL's default (128 MB) is for small machines; the
  # indexes of pixel_events take rows at random places, and once they outgrow
  # the buffers every COPY evicts and rereads pages. A quarter of the memory,
  # at most PG_SHARED_BUFFERS_MAX_MB (2 GB).
  local mem_kb sb_mb
  mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)
  sb_mb=$(( ${mem_kb:-524288} / 4096 ))
  ((sb_mb <= ${PG_SHARED_BUFFERS_MAX_MB:-2048})) || sb_mb=${PG_SHARED_BUFFERS_MAX_MB:-2048}
  ((sb_mb >= 128)) || sb_mb=128
  as_pg tee "$PG_DATA/place.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_BASE/run'
fsync = on
shared_buffers = ${sb_mb}MB
EOF
  if pid=$(live_or_clean "$PG_DATA/postmaster.pid" postgres); then
    say "postgres already running (pid $pid)"
  else
    port_free "$PG_PORT" postgres
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$START_TIMEOUT" start >/dev/null ||
      die "postgres did not start; see $PG_LOG"
  fi
  wait_ready postgres "$PG_LOG" pg_isready -q -h 127.0.0.1 -p "$PG_PORT"
  pg_sql -U place_owner -d postgres >/dev/null <<'SQL' || die "could not create role/database place"
SELECT 'CREATE ROLE place LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'place')\gexec
SELECT 'CREATE DATABASE place OWNER place_owner' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'place')\gexec
SQL
  [[ -n $pid ]] || say "postgres started on 127.0.0.1:$PG_PORT (pid $(head -n1 "$PG_DATA/postmaster.pid"))"
}

# --- RabbitMQ --------------------------------------------------------------
epmd_check() { epmd -port "$EPMD_PORT" -names; }

rmq_registered() { # LAUNCHER_PID: the node is registered with our epmd
  alive "$1" || return 2
  epmd -port "$EPMD_PORT" -names | grep -q "^name place-$profile "
}

start_rabbitmq() {
  local pid launcher log=$RMQ_DIR/log
  mkdir -p "$RMQ_DIR/home" "$RMQ_DIR/mnesia" "$RMQ_DIR/log"
  [[ -s $RMQ_DIR/home/.erlang.cookie ]] ||
    (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F >"$RMQ_DIR/home/.erlang.cookie")
  echo '[].' >"$RMQ_DIR/enabled_plugins"
  : >"$RMQ_DIR/rabbitmq-env.conf"
  cat >"$RMQ_DIR/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
loopback_users.guest = true
log.file.level = info
EOF
  if ! pid_of "$RMQ_DIR/epmd.pid" epmd >/dev/null; then
    live_or_clean "$RMQ_DIR/epmd.pid" epmd || true
    port_free "$EPMD_PORT" epmd
    setsid epmd -port "$EPMD_PORT" -address 127.0.0.1 >>"$log/epmd.log" 2>&1 </dev/null &
    echo $! >"$RMQ_DIR/epmd.pid"
    wait_ready epmd "$log/epmd.log" epmd_check
  fi
  if pid=$(live_or_clean "$RMQ_DIR/rabbitmq.pid" beam.smp); then
    say "rabbitmq already running (pid $pid)"
    launcher=$pid
  else
    port_free "$AMQP_PORT" rabbitmq
    port_free "$DIST_PORT" "rabbitmq distribution"
    setsid env "${rmq_env[@]}" "$RMQ_BIN/rabbitmq-server" >>"$log/server.out" 2>&1 </dev/null &
    launcher=$!
  fi
  wait_ready rabbitmq "$log" rmq_registered "$launcher"
  rmq rabbitmqctl -q -n "$NODE" await_startup --timeout "$START_TIMEOUT" >/dev/null 2>&1 ||
    die "rabbitmq not ready after ${START_TIMEOUT}s; see $log/"
  [[ -n $pid ]] || say "rabbitmq started on 127.0.0.1:$AMQP_PORT (node $NODE, pid $(head -n1 "$RMQ_DIR/rabbitmq.pid"))"
}

stop_rabbitmq() {
  local pid
  if pid=$(pid_of "$RMQ_DIR/rabbitmq.pid" beam.smp); then
    rmq rabbitmqctl -q -n "$NODE" stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    wait_stopped rabbitmq "$pid"
  fi
  rm -f "$RMQ_DIR/rabbitmq.pid"
  if pid=$(pid_of "$RMQ_DIR/epmd.pid" epmd); then
    epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    wait_stopped epmd "$pid"
  fi
  rm -f "$RMQ_DIR/epmd.pid"
}

# --- commands --------------------------------------------------------------
print_env() {
  cat <<EOF
export PLACE_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
export PLACE_POSTGRES_URL=postgresql://place@127.0.0.1:$PG_PORT/place
export PLACE_POSTGRES_MIGRATE_URL=postgresql://place_owner@127.0.0.1:$PG_PORT/place
export PLACE_RABBITMQ_URL=amqp://guest:guest@127.0.0.1:$AMQP_PORT/
EOF
}

start_all() {
  local pids=() failed=0 p
  start_redis & pids+=($!)
  start_postgres & pids+=($!)
  start_rabbitmq & pids+=($!)
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  ((failed == 0)) || die "start failed (running services are left up; '$0 stop --profile $profile' stops them)"
  print_env >"$STATE_DIR/env"
}

stop_all() {
  stop_pid redis "$REDIS_DIR/redis.pid" redis-server TERM &
  stop_pid postgres "$PG_DATA/postmaster.pid" postgres INT & # INT = fast shutdown
  stop_rabbitmq &
  wait
}

status() { # NAME PIDFILE COMM ADDRESS CHECK...
  local name=$1 file=$2 comm=$3 addr=$4 pid
  shift 4
  if pid=$(pid_of "$file" "$comm") && "$@" >/dev/null 2>&1; then
    printf '%-9s up    %s (pid %s)\n' "$name" "$addr" "$pid"
  else
    printf '%-9s down  %s\n' "$name" "$addr"
    return 1
  fi
}

amqp_listening() { [[ -n $(ss -Hltn "src 127.0.0.1:$AMQP_PORT") ]]; }

status_all() {
  local rc=0
  status redis "$REDIS_DIR/redis.pid" redis-server "127.0.0.1:$REDIS_PORT" redis_check || rc=1
  status postgres "$PG_DATA/postmaster.pid" postgres "127.0.0.1:$PG_PORT" \
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT" || rc=1
  status rabbitmq "$RMQ_DIR/rabbitmq.pid" beam.smp "127.0.0.1:$AMQP_PORT" amqp_listening || rc=1
  return "$rc"
}

if [[ ${USE_EXTERNAL_SERVICES:-0} == 1 ]]; then
  case $cmd in
    start | stop) say "USE_EXTERNAL_SERVICES=1: nothing to $cmd" ;;
    status) say "USE_EXTERNAL_SERVICES=1: the services are external" ;;
    env) echo "# USE_EXTERNAL_SERVICES=1: PLACE_* come from your environment or config.ini" ;;
    *) usage ;;
  esac
  exit 0
fi
if [[ $cmd == start ]]; then
  mkdir -p "$STATE_DIR"
  ((EUID != 0)) || chmod go+x "$STATE_DIR" # let the postgres user through
fi
pg_locate
case $cmd in
  start | stop) "${cmd}_all" ;;
  status) status_all ;;
  env) print_env ;;
  rabbitmqctl) rmq rabbitmqctl -n "$NODE" "${args[@]}" ;;
  *) usage ;;
esac
