#!/usr/bin/env bash
# Benchmark on PostgreSQL: orderbatch against psql's \copy on the same data.
#
#   bench/pg.sh [--orders N] [--pairs P] [--hosts "1 2 4 8"] [--out FILE]
#
# Starts a throwaway PostgreSQL 15 cluster (initdb in a temp directory, a
# Unix socket there and no TCP, the server's default durability: fsync on,
# synchronous_commit on), then times, alternating, P pairs of:
#   copy   : psql -c "\copy t from orders.csv csv header" into an unindexed
#            table of text columns (the floor), truncated before each run
#   process: orderbatch process orders.csv into a fresh schema with the
#            catalog loaded beforehand (untimed)
# and then two processes at once, each on the orders of one half of the skus,
# against the same two one after the other; the same file fed again (every
# order skipped), and its two halves by order one after the other. Prints the
# median wall time, orders/s and peak RSS of each and the ratio to the floor.
# --hosts "1 2 4 8" adds, for each N, N processes at once on the orders split
# N ways, on shared stock (every part needs every sku: orders dealt round
# robin) and on disjoint stock (parts by sku range), against one process
# doing all of those orders: throughput, and the time the runs waited for
# stock locks and held them (from their JSON logs). The cluster is stopped
# and removed at the end, also on failure.
#
# The server refuses to run as root: as root, its programs run as `nobody`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
pgbin=/usr/lib/postgresql/15/bin
orders=1000000
pairs=3
hosts=""
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --orders) orders=$2; shift 2 ;;
        --pairs) pairs=$2; shift 2 ;;
        --hosts) hosts=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) echo "usage: $0 [--orders N] [--pairs P] [--hosts \"1 2 4 8\"] [--out FILE]" >&2; exit 2 ;;
    esac
done
[ -x "$pgbin/initdb" ] || { echo "needs PostgreSQL 15 (Debian: apt-get install postgresql-15)" >&2; exit 2; }
bench_needs python3 /usr/bin/time
bench_setup

work=$(mktemp -d /tmp/obbench-pg.XXXXXX)
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
url="postgresql://postgres@$sock/bench"
psql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql "postgresql://postgres@$sock/postgres" -c "CREATE DATABASE bench"
header=$(head -n 1 "$data/orders.csv")
psql "$url" -c "CREATE TABLE t ($(echo "$header" | sed 's/,/ text, /g') text)"

n_db=0
fresh_schema() {  # a new database for orderbatch, with the catalog loaded
    n_db=$((n_db + 1))
    psql "postgresql://postgres@$sock/postgres" -c "CREATE DATABASE run_$n_db"
    export run_url="postgresql://postgres@$sock/run_$n_db"
    "$bin" --db "$run_url" -q inventory load "$catalog"
}

catalog="$data/catalog.csv"
for i in $(seq "$pairs"); do
    psql "$url" -c "TRUNCATE t"
    time_cmd copy "$pgbin/psql" -X -q "$url" -c "\\copy t from '$data/orders.csv' csv header"
    fresh_schema
    time_cmd process-csv "$bin" --db "$run_url" -q --no-progress process "$data/orders.csv" --out "$work/r"
    rm -rf "$work/r"
done

# Two halves by sku: an order goes to half A when all its skus are in the
# first half of the catalog, to B when all are in the second; mixed orders
# are left out of both, so that the two processes share no stock row.
if [ ! -f "$data/half-b.csv" ]; then
    python3 - "$data" <<'PY'
import csv, sys
data = sys.argv[1]
skus = [r["sku"] for r in csv.DictReader(open(f"{data}/catalog.csv"))]
first = set(skus[: len(skus) // 2])
rows, out = {}, {"a": [], "b": []}
with open(f"{data}/orders.csv", newline="") as f:
    reader = csv.reader(f)
    header = next(reader)
    for row in reader:
        rows.setdefault(row[0], []).append(row)
for lines in rows.values():
    sides = {"a" if line[3] in first else "b" for line in lines}
    if len(sides) == 1:
        out[sides.pop()].extend(lines)
for side, lines in out.items():
    with open(f"{data}/half-{side}.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(lines)
PY
fi
both() {  # the two halves at once, each into its own report directory
    "$bin" --db "$run_url" -q --no-progress process "$data/half-a.csv" --out "$work/ra" >/dev/null 2>&1 &
    local a=$!
    "$bin" --db "$run_url" -q --no-progress process "$data/half-b.csv" --out "$work/rb" >/dev/null 2>&1 &
    local b=$!
    local ra=0 rb=0
    wait "$a" || ra=$?
    wait "$b" || rb=$?
    ok "$ra" && ok "$rb"
}
ok() { [ "$1" -eq 0 ] || [ "$1" -eq 3 ]; }  # 3: some orders failed, a completed run
one_after_other() {
    local ra=0 rb=0
    "$bin" --db "$run_url" -q --no-progress process "$data/half-a.csv" --out "$work/ra" >/dev/null 2>&1 || ra=$?
    "$bin" --db "$run_url" -q --no-progress process "$data/half-b.csv" --out "$work/rb" >/dev/null 2>&1 || rb=$?
    ok "$ra" && ok "$rb"
}
export -f both one_after_other ok
export bin data work
for i in $(seq "$pairs"); do
    fresh_schema; rm -rf "$work/ra" "$work/rb"
    time_cmd halves-serial bash -c one_after_other
    fresh_schema; rm -rf "$work/ra" "$work/rb"
    time_cmd halves-at-once bash -c both
done
halves=$(( $(wc -l < "$data/half-a.csv") + $(wc -l < "$data/half-b.csv") - 2 ))

# The same file again into the same database (every order skipped), and the
# file's two halves by order one after the other into a fresh one.
if [ ! -f "$data/first-half.csv" ]; then
    python3 - "$data" <<'PY'
import csv, sys
data = sys.argv[1]
with open(f"{data}/orders.csv", newline="") as f:
    reader = csv.reader(f)
    header = next(reader)
    orders = {}
    for row in reader:
        orders.setdefault(row[0], []).append(row)
ids = list(orders)
for name, part in (("first-half", ids[: len(ids) // 2]), ("second-half", ids[len(ids) // 2 :])):
    with open(f"{data}/{name}.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for i in part:
            w.writerows(orders[i])
PY
fi
for i in $(seq "$pairs"); do
    fresh_schema
    time_cmd first-run "$bin" --db "$run_url" -q --no-progress process "$data/orders.csv" --out "$work/r1"
    time_cmd rerun-all-skipped "$bin" --db "$run_url" -q --no-progress process "$data/orders.csv" --out "$work/r2"
    rm -rf "$work/r1" "$work/r2"
    fresh_schema
    time_cmd halves-by-order bash -c "'$bin' --db '$run_url' -q --no-progress process '$data/first-half.csv' --out '$work/h1' >/dev/null 2>&1; '$bin' --db '$run_url' -q --no-progress process '$data/second-half.csv' --out '$work/h2' >/dev/null 2>&1; true"
    rm -rf "$work/h1" "$work/h2"
done

# N processes at once: the orders split N ways, shared or disjoint stock.
split_parts() {  # split_parts N shared|disjoint: writes $data/parts-MODE-N/part-K.csv
    local n=$1 mode=$2 dir="$data/parts-$2-$1"
    [ -d "$dir" ] && return 0
    mkdir -p "$dir"
    python3 - "$data" "$n" "$mode" "$dir" <<'PY'
import csv, sys
data, n, mode, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
skus = [r["sku"] for r in csv.DictReader(open(f"{data}/catalog.csv"))]
part_of_sku = {s: i * n // len(skus) for i, s in enumerate(skus)}
with open(f"{data}/orders.csv", newline="") as f:
    reader = csv.reader(f)
    header = next(reader)
    orders = {}
    for row in reader:
        orders.setdefault(row[0], []).append(row)
parts = [[] for _ in range(n)]
for k, (oid, lines) in enumerate(orders.items()):
    if mode == "shared":
        parts[k % n].extend(lines)
    else:
        sides = {part_of_sku.get(l[3], 0) for l in lines}
        if len(sides) == 1:
            parts[sides.pop()].extend(lines)
for k, lines in enumerate(parts):
    with open(f"{out}/part-{k}.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(lines)
PY
}
at_once() {  # at_once DIR: every part of DIR at once; JSON logs kept in DIR/log-K
    local dir=$1 pids=() k=0 rc=0
    for part in "$dir"/part-*.csv; do
        "$bin" --db "$run_url" --log-format json --no-progress process "$part" --out "$work/p$k" \
            >/dev/null 2>"$dir/log-$k" &
        pids+=($!); k=$((k + 1))
    done
    for p in "${pids[@]}"; do wait "$p" || rc=$?; [ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || return 1; rc=0; done
}
export -f at_once
for n in $hosts; do
    for mode in shared disjoint; do
        split_parts "$n" "$mode"
        dir="$data/parts-$mode-$n"
        lines=$(( $(cat "$dir"/part-*.csv | wc -l) - n ))
        fresh_schema; rm -rf "$work"/p*
        time_cmd "$mode-$n-at-once" bash -c "at_once '$dir'"
        python3 - "$dir" "$mode-$n" "$lines" >> "$work/locks" <<'PY'
import glob, json, sys
wait = held = 0.0
for path in glob.glob(f"{sys.argv[1]}/log-*"):
    for line in open(path):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("event") == "run_finished":
            s = e.get("stage_seconds", {})
            wait += s.get("lock_wait", 0)
            held += s.get("locked", 0)
print(sys.argv[2], sys.argv[3], f"{wait:.2f}", f"{held:.2f}")
PY
        fresh_schema; rm -rf "$work"/p*
        cat "$dir"/part-*.csv | awk 'NR == 1 || !/^order_id,/' > "$work/all-parts.csv"
        time_cmd "$mode-$n-one-process" "$bin" --db "$run_url" -q --no-progress process "$work/all-parts.csv" --out "$work/p1"
    done
done
touch "$work/locks"

python3 - "$work/times" "$orders" "$data" "$pairs" "$halves" "$work/locks" <<'PY' | tee ${out:+"$out"}
import os, statistics, sys
times, n, data, pairs, halves, locks = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
rows = {}
for line in open(times):
    label, wall, rss = line.split()
    rows.setdefault(label, []).append((float(wall), int(rss)))
floor = statistics.median(w for w, _ in rows["copy"])
print(f"PostgreSQL 15: {n} orders, {os.path.getsize(os.path.join(data, 'orders.csv')) / 1e6:.0f} MB CSV; "
      f"median of {pairs} runs; {os.cpu_count()} CPUs; halves: {halves} order lines")
print(f"{'what':<15} {'wall s':>8} {'peak RSS MB':>12} {'x copy':>7}")
for label, vals in rows.items():
    wall = statistics.median(w for w, _ in vals)
    rss = max(r for _, r in vals) / 1024
    print(f"{label:<15} {wall:8.2f} {rss:12.0f} {wall / floor:7.2f}")
serial = statistics.median(w for w, _ in rows["halves-serial"])
once = statistics.median(w for w, _ in rows["halves-at-once"])
print(f"two halves at once / one after the other: {once / serial:.2f}")
med = lambda label: statistics.median(w for w, _ in rows[label])
print(f"re-run, every order skipped / first run: {med('rerun-all-skipped') / med('first-run'):.2f}")
print(f"two halves by order, one after the other / the whole file in one run: {med('halves-by-order') / med('first-run'):.2f}")
lock = {}
for line in open(locks):
    label, lines, wait, held = line.split()
    lock[label] = (int(lines), float(wait), float(held))
if lock:
    print(f"{'N processes':<14} {'stock':<9} {'lines':>9} {'at once s':>10} {'one process s':>14} {'speed-up':>9} {'lock wait s':>12} {'locked s':>9}")
    for label, (lines, wait, held) in lock.items():
        mode, k = label.split("-")
        together, alone = med(f"{label}-at-once"), med(f"{label}-one-process")
        print(f"{k:<14} {mode:<9} {lines:>9} {together:>10.2f} {alone:>14.2f} {alone / together:>9.2f} {wait:>12.2f} {held:>9.2f}")
PY
