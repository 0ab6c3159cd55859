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

ensure_broker() {
  [ -n "${AMQP_URL:-}" ] && return 0
  port_open 5672 && return 0
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "Starting RabbitMQ (rabbitmq-server -detached)..."
    rabbitmq-server -detached >/dev/null 2>&1 || true
    wait_port 5672 && return 0
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
