#!/usr/bin/env bash
# The inbox measured, on the release build (bench/inbox.py does the work):
#
#   bench/inbox.sh [small|workers|all]
#
# small:   a 30-order file against a 100,000-sku catalog, from its arrival to
#          its move into done, with the catalog kept by a --watch worker, on
#          SQLite and on PostgreSQL (--settle 0.2, reported with and without it).
# workers: 4 workers on PostgreSQL while 40 files of 2,000 orders arrive, one
#          of them SIGKILLed mid-file: moves by worker, takeovers, the time
#          from each file's arrival to its move.
#
# PostgreSQL is a throwaway cluster (initdb in a temp directory, a Unix
# socket there and no TCP, the server's default durability), stopped and
# removed at the end, also on failure. As root, its programs run as `nobody`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
what=${1:-all}
pgbin=/usr/lib/postgresql/15/bin
[ -x "$pgbin/initdb" ] || { echo "needs PostgreSQL 15 (Debian: apt-get install postgresql-15)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "needs python3" >&2; exit 2; }
(cd "$root" && cargo build --release --quiet)
bin="$root/target/release/orderbatch"

work=$(mktemp -d /tmp/obbench-inbox.XXXXXX)
chmod 0755 "$work"
as_server() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; else "$@"; fi; }
mkdir "$work/sock" "$work/data"
[ "$(id -u)" = 0 ] && chown nobody:nogroup "$work/sock" "$work/data"
stop() {
    as_server "$pgbin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap stop EXIT
as_server "$pgbin/initdb" -D "$work/data" -A trust -U postgres -E UTF8 --locale=C >/dev/null
as_server "$pgbin/pg_ctl" -D "$work/data" -l "$work/sock/server.log" -w \
    -o "-k $work/sock -c listen_addresses=''" start >/dev/null
sock=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$work/sock")
db() {  # a new database on the cluster
    "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "postgresql://postgres@$sock/postgres" -c "CREATE DATABASE $1"
    echo "postgresql://postgres@$sock/$1"
}

if [ "$what" = small ] || [ "$what" = all ]; then
    echo "== SQLite"
    mkdir "$work/small-sqlite"
    python3 "$here/inbox.py" small --db "$work/small-sqlite/ob.db" --bin "$bin" --work "$work/small-sqlite"
    echo "== PostgreSQL"
    mkdir "$work/small-pg"
    python3 "$here/inbox.py" small --db "$(db small)" --bin "$bin" --work "$work/small-pg"
fi
if [ "$what" = workers ] || [ "$what" = all ]; then
    echo "== PostgreSQL, 4 workers"
    mkdir "$work/workers"
    python3 "$here/inbox.py" workers --db "$(db workers)" --bin "$bin" --work "$work/workers"
fi
