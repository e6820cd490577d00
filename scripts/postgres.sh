#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback, from Debian's packages
# (apt-get install postgresql), for profkit's Postgres tests and for trying
# `profkit attach` on a service that keeps its data in PostgreSQL.
#
#   scripts/postgres.sh start     initdb into a new temporary folder, start the
#                                 server on a free 127.0.0.1 port (trust auth,
#                                 loopback only), create database "profkit";
#                                 prints its URL as the last line:
#                                 postgres://profkit@127.0.0.1:PORT/profkit
#   scripts/postgres.sh stop URL  stop that cluster and remove its folder
#                                 (URL as printed by start, or its folder)
#   scripts/postgres.sh stop      stop every cluster this script started
#
# As root (CI, these machines) the server runs as the unprivileged `postgres`
# user the package creates (PostgreSQL refuses to run as root); otherwise as
# the current user. Nothing outside the temporary folder is written.
set -euo pipefail

PREFIX="${TMPDIR:-/tmp}/profkit-pg-"

die() {
  echo "postgres.sh: $*" >&2
  exit 2
}

bindir() {
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir
    return
  fi
  # Debian keeps the server programs out of PATH, one folder per major version.
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$d" ] && [ -x "$d/initdb" ] || die "PostgreSQL is not installed (no initdb): apt-get install postgresql"
  echo "$d"
}

# Runs a command as the cluster's owner.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  local bin port dir
  bin=$(bindir)
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root and there is no 'postgres' user to run the server as (apt-get install postgresql creates it)"
  fi
  command -v python3 >/dev/null 2>&1 || die "python3 is needed to pick a free port"
  port=$(free_port)
  dir=$(mktemp -d "${PREFIX}${port}.XXXXXX")
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir"
  fi
  chmod 700 "$dir"
  if ! as_owner "$bin/initdb" -D "$dir/data" -U profkit --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    rm -rf "$dir"
    die "initdb failed in $dir"
  fi
  # Loopback only, the socket inside the folder, small and fast: a
  # throwaway cluster needs no durability.
  if ! as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
      start >/dev/null; then
    cat "$dir/server.log" >&2 || true
    rm -rf "$dir"
    die "the server did not start on 127.0.0.1:$port"
  fi
  as_owner "$bin/psql" -q -h 127.0.0.1 -p "$port" -U profkit -d postgres \
    -c 'CREATE DATABASE profkit' >/dev/null
  echo "cluster: $dir (stop it with: scripts/postgres.sh stop)"
  echo "postgres://profkit@127.0.0.1:$port/profkit"
}

stop_dir() {
  local dir=$1 bin
  bin=$(bindir)
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  echo "stopped and removed $dir"
}

stop() {
  local target=${1:-} port dirs
  if [ -z "$target" ]; then
    dirs=$(ls -d "${PREFIX}"* 2>/dev/null || true)
  elif [ -d "$target" ]; then
    case "$target" in
      "${PREFIX}"*) dirs=$target ;;
      *) die "'$target' is not a folder this script made (${PREFIX}…)" ;;
    esac
  else
    # postgres://user@127.0.0.1:PORT/db
    port=$(printf '%s' "$target" | sed -nE 's#^postgres(ql)?://[^/]*:([0-9]+)(/.*)?$#\2#p')
    [ -n "$port" ] || die "'$target' is neither a cluster folder nor a postgres:// URL with a port"
    dirs=$(ls -d "${PREFIX}${port}."* 2>/dev/null || true)
    [ -n "$dirs" ] || die "no cluster of this script listens on port $port"
  fi
  for d in $dirs; do
    stop_dir "$d"
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  *) die "usage: scripts/postgres.sh start | stop [URL|FOLDER]" ;;
esac
