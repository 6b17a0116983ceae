#!/usr/bin/env bash
# A throwaway PostgreSQL for tests, on 127.0.0.1 only.
#   scripts/pg.sh start <dir> <port>   initdb into <dir>, start, create database sluice_test, and
#                                      print its URL: postgresql://postgres@127.0.0.1:<port>/sluice_test
#   scripts/pg.sh stop <dir>           stop it (fast shutdown, then by pid) and remove <dir>
#   scripts/pg.sh restart <dir>        stop and start it again, keeping the data (a database
#                                      "restart" as clients see it)
# Uses Debian's server binaries (/usr/lib/postgresql/<newest>/bin, or $PG_BIN). initdb refuses
# to run as root, so as root the server runs as the `postgres` OS user and <dir> is given to it
# (its parent directories must be searchable by that user; /tmp is). Authentication is `trust`,
# which is why the server listens on 127.0.0.1 and on a socket inside <dir> only. fsync is off:
# a crash loses the data, which a test database can afford, and start-up and DDL get faster.
set -euo pipefail

die() { echo "pg.sh: $*" >&2; exit 1; }
usage() { die "usage: pg.sh start <dir> <port> | stop <dir> | restart <dir>"; }

cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then usage; fi

if [ -z "${PG_BIN:-}" ]; then
  for b in /usr/lib/postgresql/*/bin; do
    [ -x "$b/initdb" ] && PG_BIN=$(printf '%s\n%s\n' "${PG_BIN:-}" "$b" | sort -V | tail -n 1)
  done
fi
if [ -z "${PG_BIN:-}" ] || [ ! -x "$PG_BIN/initdb" ]; then
  die "PostgreSQL server binaries not found (apt-get install -y postgresql, or set PG_BIN)"
fi

# Runs a command as the user that owns the cluster.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    if command -v runuser >/dev/null; then
      (cd / && runuser -u postgres -- "$@")
    else
      local q; q=$(printf '%q ' "$@")
      (cd / && su postgres -s /bin/sh -c "$q")
    fi
  else
    "$@"
  fi
}

marker=.sluice-pg # names a directory this script made, so `stop` never removes anything else

start() {
  local port=${1:-}
  if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then usage; fi
  [ -e "$dir/data/PG_VERSION" ] && die "$dir already holds a cluster (pg.sh stop $dir first)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ "${#dir}" -le 90 ] || die "$dir is too long for a unix socket path; use a shorter one"
  touch "$dir/$marker"
  echo "$port" >"$dir/port"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "no 'postgres' OS user (install the postgresql package)"
    chown -R postgres:postgres "$dir"
    as_pg test -w "$dir" ||
      die "the postgres user cannot write $dir (its parent directories must be searchable)"
  fi
  as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres -E UTF8 --no-locale --auth=trust \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  cat >"$dir/data/pg_hba.conf" <<EOF
# written by scripts/pg.sh: trust, loopback and this directory's socket only
local all all trust
host  all all 127.0.0.1/32 trust
EOF
  cat >>"$dir/data/postgresql.conf" <<EOF

# scripts/pg.sh
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
EOF
  [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$dir/data/pg_hba.conf" "$dir/data/postgresql.conf"
  run_server
  as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres sluice_test ||
    die "createdb sluice_test failed"
  echo "postgresql://postgres@127.0.0.1:$port/sluice_test"
}

run_server() {
  local port; port=$(cat "$dir/port")
  as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start >/dev/null ||
    { tail -n 20 "$dir/server.log" >&2 || true; die "the server did not start (port $port taken?)"; }
  for _ in $(seq 1 100); do
    if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; then
      return 0
    fi
    sleep 0.1
  done
  die "the server is not accepting connections on 127.0.0.1:$port"
}

stop_server() {
  local pidfile="$dir/data/postmaster.pid"
  [ -f "$pidfile" ] || return 0
  local pid; pid=$(head -n 1 "$pidfile" 2>/dev/null || true)
  as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 10 stop >/dev/null 2>&1 || true
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

case "$cmd" in
  start) start "${3:-}" ;;
  stop)
    [ -d "$dir" ] || exit 0
    [ -e "$dir/$marker" ] || die "$dir was not made by pg.sh start; not touching it"
    stop_server
    rm -rf "$dir"
    ;;
  restart)
    [ -e "$dir/$marker" ] || die "$dir was not made by pg.sh start"
    stop_server
    run_server
    ;;
  *) usage ;;
esac
