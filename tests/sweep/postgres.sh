#!/usr/bin/env bash
# A throwaway PostgreSQL server for the sweep tests.
#   tests/sweep/postgres.sh start DIR   initdb in DIR (as the `postgres` user when run as root),
#                                       start it on 127.0.0.1 and a free port, print its URL last
#   tests/sweep/postgres.sh stop DIR    stop it
# Exit status 3: cannot start here (the reason is printed).
set -euo pipefail
cmd=${1:?start|stop}
dir=$(realpath -m "${2:?DIR}")
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
[ -n "$bin" ] || bin=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
as_owner() {
  if [ "$(id -u)" = 0 ]; then su -s /bin/sh postgres -c "$*"; else sh -c "$*"; fi
}
if [ "$cmd" = stop ]; then
  [ -f "$dir/postmaster.pid" ] && as_owner "'$bin/pg_ctl' -D '$dir' -m fast stop" >/dev/null || true
  exit 0
fi
[ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] || { echo "PostgreSQL unavailable: initdb/pg_ctl not installed (apt-get install postgresql)"; exit 3; }
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  echo "PostgreSQL unavailable: running as root and there is no postgres user to own the data"; exit 3
fi
mkdir -p "$dir"
if [ "$(id -u)" = 0 ]; then
  chown postgres "$dir"
  # The postgres user must reach DIR through its parents (temp folders are 0700).
  p=$(dirname "$dir"); while [ "$p" != / ]; do chmod a+x "$p"; p=$(dirname "$p"); done
fi
as_owner "'$bin/initdb' -D '$dir' -A trust -U cortexfit" > "$dir.initdb.log" 2>&1 \
  || { echo "PostgreSQL unavailable: initdb failed (see $dir.initdb.log)"; exit 3; }
port=$((30000 + ($$ % 5000) * 2))
as_owner "'$bin/pg_ctl' -D '$dir' -w -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1\" -l '$dir/log' start" >/dev/null \
  || { echo "PostgreSQL unavailable: pg_ctl start failed (see $dir/log)"; exit 3; }
echo "postgres://cortexfit@127.0.0.1:$port/postgres"
