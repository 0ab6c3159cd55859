#!/usr/bin/env bash
# Start what the platform or its tests need when it is not running: RabbitMQ, PostgreSQL, Chromium,
# PgBouncer (the binary only: the tests start private instances of it).
# Each check is quiet when the thing is already there, and says in one line what to do when it cannot help.
set -uo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&- ; }

wait_port() {
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 1; done
  return 1
}

# RabbitMQ 3.10 sizes its file handle cache from the node's soft limit on open files at boot (1,024
# by default here: 927 handles). A full test run holds more (each vhost's message stores and queue
# files, each connection's socket); past the limit every new connection and vhost waits for a handle,
# and the node seems to hang for minutes. Raise the soft limit to the hard one and tell the cache.
raise_broker_file_limit() {
  command -v rabbitmqctl >/dev/null 2>&1 || return 0
  local pid soft hard
  pid="$(rabbitmqctl eval 'os:getpid().' 2>/dev/null | tr -d '"')"
  [ -r "/proc/${pid:-none}/limits" ] || return 0
  read -r soft hard < <(awk '/Max open files/ {print $4, $5}' "/proc/$pid/limits")
  [ "$hard" = "unlimited" ] && hard=65536
  if [ "$soft" != "unlimited" ] && [ "$soft" -lt "$hard" ]; then
    # Root may lack CAP_SYS_RESOURCE in a container; the node's own user may raise its soft limit.
    prlimit --pid "$pid" --nofile="$hard:$hard" 2>/dev/null \
      || su rabbitmq -s /bin/sh -c "prlimit --pid $pid --nofile=$hard:$hard" 2>/dev/null \
      || { echo "RabbitMQ keeps $soft open files at most (could not raise it to $hard)." >&2; return 0; }
  fi
  read -r soft < <(awk '/Max open files/ {print $4}' "/proc/$pid/limits")
  [ "$soft" = "unlimited" ] && soft=65536
  # The cache keeps 100 descriptors for the VM itself, as it does at boot.
  rabbitmqctl eval "file_handle_cache:set_limit($((soft - 100)))." >/dev/null 2>&1 || true
}

ensure_broker() {
  [ -n "${AMQP_URL:-}" ] && return 0
  if port_open 5672; then
    raise_broker_file_limit
    return 0
  fi
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "Starting RabbitMQ (rabbitmq-server -detached)..."
    (ulimit -n "$(ulimit -Hn)" 2>/dev/null; rabbitmq-server -detached >/dev/null 2>&1) || true
    if wait_port 5672; then
      raise_broker_file_limit
      return 0
    fi
  fi
  echo "RabbitMQ is not reachable on 127.0.0.1:5672: start it (rabbitmq-server -detached, or docker compose up -d rabbitmq) or set AMQP_URL." >&2
  exit 2
}

ensure_postgres() {
  [ -n "${TEST_POSTGRES_URL:-}" ] && return 0
  port_open 5432 && return 0
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "Starting PostgreSQL..."
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start >/dev/null 2>&1 || true
    wait_port 5432 && return 0
  fi
  echo "PostgreSQL is not reachable on 127.0.0.1:5432: start it or set TEST_POSTGRES_URL." >&2
  exit 2
}

ensure_chromium() {
  [ -n "${CHROMIUM_PATH:-}" ] && return 0
  command -v chromium >/dev/null 2>&1 && return 0
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "Installing Chromium from Debian for the portal's browser tests..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) && return 0
  fi
  echo "Chromium is missing: install Debian's chromium package (apt-get install chromium) or set CHROMIUM_PATH." >&2
  exit 2
}

ensure_pgbouncer() {
  command -v pgbouncer >/dev/null 2>&1 && return 0
  [ -x /usr/sbin/pgbouncer ] && return 0
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "Installing PgBouncer from Debian for the connection-pooler tests..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null) && return 0
  fi
  echo "PgBouncer is missing: install Debian's pgbouncer package (apt-get install pgbouncer)." >&2
  exit 2
}

for what in "$@"; do
  case "$what" in
    broker) ensure_broker ;;
    postgres) ensure_postgres ;;
    chromium) ensure_chromium ;;
    pgbouncer) ensure_pgbouncer ;;
    *) echo "unknown: $what" >&2; exit 2 ;;
  esac
done
