#!/usr/bin/env bash
# A throwaway PostgreSQL 15 server for tests, on 127.0.0.1 only, in its own folder and port.
#
#   URL=$(bash bench/pg_server.sh start DIR [PORT])   # prints the SQLAlchemy URL
#   HARNESS_TEST_POSTGRES_URL=$URL make test-pg
#   bash bench/pg_server.sh stop DIR
#
# Installs the Debian package if no server binaries are found (needs root). initdb refuses
# to run as root, so the server runs as the `postgres` user. Trust authentication on the
# loopback interface only: for tests, never for data that matters.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
port=${3:-55432}
db=harness_test

if [[ -z "$cmd" || -z "$dir" ]]; then
    echo "usage: $0 start|stop DIR [PORT]" >&2
    exit 2
fi

find_bin() {
    local d
    for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
        [[ -x "$d/pg_ctl" ]] && { echo "$d"; return 0; }
    done
    return 1
}

as_pg() {  # run a server binary as the postgres user when we are root
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "$cmd" in
start)
    bin=$(find_bin) || {
        echo "installing postgresql (apt-get)..." >&2
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
        bin=$(find_bin)
    }
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
    data="$dir/data" sock="$dir/sock" log="$dir/server.log"
    if [[ ! -f "$data/PG_VERSION" ]]; then
        as_pg mkdir -p "$sock"
        as_pg "$bin/initdb" -D "$data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1
    fi
    as_pg "$bin/pg_ctl" -D "$data" -l "$log" -w \
        -o "-k $sock -c listen_addresses=127.0.0.1 -p $port -c fsync=off" start >&2
    as_pg "$bin/psql" -h "$sock" -p "$port" -U postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 ||
        as_pg "$bin/psql" -h "$sock" -p "$port" -U postgres -qc "CREATE DATABASE $db" >&2
    echo "$port" >"$dir/port"
    echo "postgresql+psycopg2://postgres@127.0.0.1:$port/$db"
    ;;
stop)
    bin=$(find_bin)
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2
    fi
    ;;
*)
    echo "usage: $0 start|stop DIR [PORT]" >&2
    exit 2
    ;;
esac
