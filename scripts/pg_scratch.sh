#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and benchmarks, on a free port of 127.0.0.1.
#   scripts/pg_scratch.sh start DIR   -> prints postgresql://... (superuser, trust auth)
#   scripts/pg_scratch.sh stop DIR    -> stops it and removes DIR
# PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres`
# user (created by Debian's package). Needs the `postgresql` package (scripts/setup.sh).
set -euo pipefail
action=${1:?start or stop}
dir=${2:?directory}

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bindir" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case $action in
start)
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # Each failure says why on stderr (the tests show it when they skip PostgreSQL).
  if ! as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    exit 1
  fi
  if ! as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start \
    -o "-h 127.0.0.1 -p $port -k $dir -F -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" >/dev/null; then
    tail -n 20 "$dir/server.log" >&2
    exit 1
  fi
  echo "postgresql://postgres@127.0.0.1:$port/postgres"
  ;;
stop)
  [ -d "$dir/data" ] && as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start|stop DIR" >&2
  exit 2
  ;;
esac
