#!/usr/bin/env bash
# A local PostgreSQL for dagster.postgres.yaml: Debian's server, installed when missing, and a
# throwaway cluster on loopback.
#
#   scripts/postgres_up.sh                 install Debian's `postgresql` if its binaries are missing
#   scripts/postgres_up.sh DIR [PORT]      ... then initdb into DIR/data and start it on 127.0.0.1:PORT
#                                          (a free port when omitted); prints the CT_PG_* variables
#                                          dagster.postgres.yaml reads, one NAME=value per line
#   scripts/postgres_up.sh --stop DIR      stop the cluster in DIR
#
# Exit status 3: the server cannot be installed here (no apt-get, or not root); the message says why.
# Every step that could wait on the network or a lock has a time limit: this never hangs.
set -euo pipefail

DB_NAME=ct_dagster
DB_USER=ct
APT_TIMEOUT=${CT_APT_TIMEOUT:-600}

log() { echo "postgres_up: $*" >&2; }

pg_bin_dir() {
    # Debian keeps the server binaries out of PATH, under /usr/lib/postgresql/<major>/bin.
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n "$found" && -x "$found/initdb" && -x "$found/pg_ctl" ]]; then
        echo "$found"
    elif command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(readlink -f "$(command -v initdb)")"
    fi
}

ensure_installed() {
    if [[ -n "$(pg_bin_dir)" ]]; then
        return 0
    fi
    if ! command -v apt-get >/dev/null; then
        log "PostgreSQL is not installed and there is no apt-get to install Debian's postgresql"
        exit 3
    fi
    if [[ $(id -u) -ne 0 ]]; then
        log "PostgreSQL is not installed and installing Debian's postgresql needs root"
        exit 3
    fi
    log "installing Debian's postgresql (apt-get, at most ${APT_TIMEOUT} s per step)"
    export DEBIAN_FRONTEND=noninteractive
    if ! timeout "$APT_TIMEOUT" apt-get update -qq >&2 \
        || ! timeout "$APT_TIMEOUT" apt-get install -y -qq --no-install-recommends \
            -o DPkg::Lock::Timeout=120 postgresql >&2; then
        log "apt-get could not install postgresql (registry unreachable or timed out)"
        exit 3
    fi
    if [[ -z "$(pg_bin_dir)" ]]; then
        log "postgresql installed but initdb/pg_ctl were not found under /usr/lib/postgresql/*/bin"
        exit 3
    fi
}

# initdb and the server refuse to run as root: as root, run them as the `postgres` system user.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u "$OWNER" -- "$@"
    else
        "$@"
    fi
}

pick_owner() {
    OWNER=$(id -un)
    if [[ $(id -u) -eq 0 ]]; then
        OWNER=postgres
        id "$OWNER" >/dev/null 2>&1 || useradd --system --no-create-home "$OWNER"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_cluster() {
    local dir=$1 port=${2:-$(free_port)} bin password
    bin=$(pg_bin_dir)
    pick_owner
    mkdir -p "$dir"
    [[ $(id -u) -eq 0 ]] && chown "$OWNER" "$dir"
    chmod 700 "$dir"
    if ! as_owner test -w "$dir"; then
        log "$OWNER cannot write to $dir (a parent folder is not traversable): use a folder under /tmp"
        exit 1
    fi
    password=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
    (umask 077 && printf '%s\n' "$password" > "$dir/pwfile")
    [[ $(id -u) -eq 0 ]] && chown "$OWNER" "$dir/pwfile"
    if ! as_owner "$bin/initdb" -D "$dir/data" -U "$DB_USER" --pwfile="$dir/pwfile" \
        --auth-host=scram-sha-256 --auth-local=scram-sha-256 --encoding=UTF8 --no-locale >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        exit 1
    fi
    rm -f "$dir/pwfile"
    # TCP on loopback only; no Unix socket, so nothing is shared with a system cluster.
    as_owner tee -a "$dir/data/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
max_connections = 100
EOF
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >&2
    PGPASSWORD=$password timeout 60 "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$DB_USER" "$DB_NAME" >&2
    log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, database $DB_NAME"
    printf 'CT_PG_HOST=127.0.0.1\nCT_PG_PORT=%s\nCT_PG_USER=%s\nCT_PG_PASSWORD=%s\nCT_PG_DB=%s\n' \
        "$port" "$DB_USER" "$password" "$DB_NAME"
}

stop_cluster() {
    local dir=$1 bin
    bin=$(pg_bin_dir)
    pick_owner
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >&2
    fi
}

case "${1:-}" in
    "") ensure_installed ;;
    --stop) stop_cluster "${2:?usage: postgres_up.sh --stop DIR}" ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) ensure_installed; start_cluster "$1" "${2:-}" ;;
esac
