#!/usr/bin/env bash
# Benchmark: orderbatch against SQLite's own CSV loader on the same data.
#
#   bench/run.sh [--orders N] [--pairs P] [--scale] [--peers] [--sweep] [--out FILE]
#
# Generates (and caches under bench/data/) a catalog and order files with
# the order generator (--skus 20000 --bad-rate 0.02 --stock ample; not part of
# this repository: bench/lib.sh takes it from shared/bench/gen_orders.py beside
# the repository's directory), and from its catalog two more for the same
# order file: tight (each sku stocked at 60 % of what the file asks: a flash
# sale that sells out) and
# price (every price one cent off: every order fails). Then times,
# alternating, P rounds of:
#   import : sqlite3 fresh.db '.mode csv' '.import orders.csv t'   (the floor)
#   process-csv: orderbatch process orders.csv  (fresh database, catalog loaded beforehand, untimed)
#   rerun-csv: the same file again into that database (every order skipped)
#   process-jsonl, dry-run-csv: likewise
#   sold-out: orders.csv against the tight catalog (INSUFFICIENT_STOCK)
#   all-failing: orders.csv against the price catalog (PRICE_MISMATCH)
# Prints the median wall time, orders/s, MB/s and peak RSS of each, the ratio
# to the import and to process-csv, and what the all-failing night leaves:
# the database and failed.csv against the input's size.
# --sweep adds process-csv with --jobs 1, 2, 4, ... up to the CPUs (one each
# round). --scale adds a 4N-order file (memory and throughput at 4x) and four
# N-order slices of it processed one after the other into one database.
# --peers adds, once each and only when installed, the tools a user might
# pick instead: DuckDB's CSV load (`duckdb` or its Python package), pandas read_csv + to_sql
# (python3 with pandas) and sqlite-utils insert --csv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
orders=1000000
pairs=3
scale=0
sweep=0
peers=0
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --orders) orders=$2; shift 2 ;;
        --pairs) pairs=$2; shift 2 ;;
        --scale) scale=1; shift ;;
        --sweep) sweep=1; shift ;;
        --peers) peers=1; shift ;;
        --out) out=$2; shift 2 ;;
        *) echo "usage: $0 [--orders N] [--pairs P] [--scale] [--peers] [--sweep] [--out FILE]" >&2; exit 2 ;;
    esac
done
bench_needs sqlite3 python3 /usr/bin/time
bench_setup
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fresh_db() {  # a database with a catalog loaded (default: the generator's)
    rm -f "$work"/ob.db*
    "$bin" --db "$work/ob.db" -q inventory load "$data/${1:-catalog.csv}"
}

# The tight and the price catalog, from the generator's and the order file.
if [ ! -f "$data/catalog-price.csv" ]; then
    python3 - "$data" <<'PY'
import csv, os, sys
data = sys.argv[1]
need = {}
with open(os.path.join(data, "orders.csv"), newline="") as f:
    r = csv.reader(f)
    h = next(r)
    sku, qty = h.index("sku"), h.index("quantity")
    for row in r:
        try:
            n = int(row[qty])
        except (ValueError, IndexError):
            continue  # a bad row: its order fails anyway
        if n > 0:
            need[row[sku]] = need.get(row[sku], 0) + n
with open(os.path.join(data, "catalog.csv"), newline="") as f:
    r = csv.reader(f)
    h = next(r)
    rows = list(r)
price, on_hand = h.index("unit_price"), h.index("on_hand")

def write(name, change):
    with open(os.path.join(data, name + ".tmp"), "w", newline="") as g:
        w = csv.writer(g, lineterminator="\n")
        w.writerow(h)
        for row in rows:
            row = list(row)
            change(row)
            w.writerow(row)
    os.replace(os.path.join(data, name + ".tmp"), os.path.join(data, name))

def tight(row):  # 60 % of what the file asks of the sku
    row[on_hand] = str(need.get(row[0], 0) * 6 // 10)

def cent_off(row):
    whole, _, frac = row[price].partition(".")
    cents = int(whole) * 100 + int((frac + "00")[:2]) + 1
    row[price] = f"{cents // 100}.{cents % 100:02d}"

write("catalog-tight.csv", tight)
write("catalog-price.csv", cent_off)
PY
fi

jobs_list=""
if [ "$sweep" = 1 ]; then
    n=1
    while [ "$n" -lt "$(nproc)" ]; do jobs_list="$jobs_list $n"; n=$((n * 2)); done
    jobs_list="$jobs_list $(nproc)"
fi

run_ob() {  # LABEL ARGS...: a timed run into $work/ob.db, reports in $work/r
    local label=$1; shift
    rm -rf "$work/r"
    time_cmd "$label" "$bin" --db "$work/ob.db" -q --no-progress process "$@" --out "$work/r"
}

for i in $(seq "$pairs"); do
    rm -f "$work/imp.db"
    time_cmd import sqlite3 "$work/imp.db" '.mode csv' ".import $data/orders.csv t"
    fresh_db; run_ob process-csv "$data/orders.csv"
    run_ob rerun-csv "$data/orders.csv"
    fresh_db; run_ob process-jsonl "$data/orders.jsonl"
    fresh_db; run_ob dry-run-csv "$data/orders.csv" --dry-run
    fresh_db catalog-tight.csv; run_ob sold-out "$data/orders.csv"
    fresh_db catalog-price.csv; run_ob all-failing "$data/orders.csv"
    # What a night when every order fails leaves behind.
    echo "$(stat -c %s "$work/ob.db") $(stat -c %s "$work"/r/run-*/failed.csv)" > "$work/sizes"
    for j in $jobs_list; do
        fresh_db; run_ob "jobs-$j" "$data/orders.csv" --jobs "$j"
    done
done
rm -rf "$work/r"

if [ "$scale" = 1 ]; then
    big=$((orders * 4))
    bigdata="$here/data/$big"
    if [ ! -f "$bigdata/orders.csv" ]; then
        echo "generating $big orders in $bigdata ..." >&2
        python3 "$gen" "$bigdata" --orders "$big" --skus 20000 --bad-rate 0.02 --stock ample --format csv
    fi
    # Four slices of N orders each (distinct order ids), header on each.
    if [ ! -f "$bigdata/slice-4.csv" ]; then
        awk -F, -v n="$orders" -v dir="$bigdata" '
            NR == 1 { header = $0; next }
            { id = substr($1, 5) + 0; s = int(id / n) + 1; f = dir "/slice-" s ".csv"
              if (!(f in seen)) { print header > f; seen[f] = 1 }
              print > f }' "$bigdata/orders.csv"
    fi
    rm -f "$work"/ob.db*
    "$bin" --db "$work/ob.db" -q inventory load "$bigdata/catalog.csv"
    time_cmd process-4x "$bin" --db "$work/ob.db" -q --no-progress process "$bigdata/orders.csv" --out "$work/r"
    rm -rf "$work/r" "$work"/ob.db*
    "$bin" --db "$work/ob.db" -q inventory load "$bigdata/catalog.csv"
    for s in 1 2 3 4; do
        time_cmd "slice-$s" "$bin" --db "$work/ob.db" -q --no-progress process "$bigdata/slice-$s.csv" --out "$work/r"
    done
fi

if [ "$peers" = 1 ]; then
    load="CREATE TABLE t AS SELECT * FROM read_csv('$data/orders.csv')"
    rm -f "$work/peer.duckdb"
    if command -v duckdb >/dev/null; then
        time_cmd duckdb duckdb "$work/peer.duckdb" "$load"
    elif python3 -c 'import duckdb' 2>/dev/null; then
        # The Python package (pip install duckdb) runs the same engine.
        time_cmd duckdb python3 -c "import duckdb, sys; duckdb.connect(sys.argv[1]).execute(sys.argv[2])" "$work/peer.duckdb" "$load"
    else echo "peer skipped: duckdb not installed (its CLI, or pip install duckdb)" >&2; fi
    if python3 -c 'import pandas' 2>/dev/null; then
        rm -f "$work/peer.db"
        time_cmd pandas python3 -c "import sqlite3, sys, pandas as pd; pd.read_csv(sys.argv[1]).to_sql('t', sqlite3.connect(sys.argv[2]), index=False)" "$data/orders.csv" "$work/peer.db"
    else echo "peer skipped: pandas not installed (pip install pandas)" >&2; fi
    if command -v sqlite-utils >/dev/null; then
        rm -f "$work/peer.db"
        time_cmd sqlite-utils sqlite-utils insert "$work/peer.db" t "$data/orders.csv" --csv
    else echo "peer skipped: sqlite-utils not installed (pip install sqlite-utils)" >&2; fi
fi

python3 - "$work/times" "$orders" "$data" "$pairs" <<'PY' | tee ${out:+"$out"}
import os, statistics, sys
times, n, data, pairs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = {}
for line in open(times):
    label, wall, rss = line.split()
    rows.setdefault(label, []).append((float(wall), int(rss)))
size = {"csv": os.path.getsize(os.path.join(data, "orders.csv")),
        "jsonl": os.path.getsize(os.path.join(data, "orders.jsonl"))}
imp = statistics.median(w for w, _ in rows["import"])
good = statistics.median(w for w, _ in rows["process-csv"])
print(f"{n} orders, {size['csv'] / 1e6:.0f} MB CSV, {size['jsonl'] / 1e6:.0f} MB JSONL; median of {pairs} runs; "
      f"{os.cpu_count()} CPUs")
print(f"{'what':<14} {'wall s':>8} {'orders/s':>10} {'MB/s':>7} {'peak RSS MB':>12} {'x import':>9} {'x csv':>6}")
for label, vals in rows.items():
    wall = statistics.median(w for w, _ in vals)
    rss = max(r for _, r in vals) / 1024
    orders = n * 4 if label == "process-4x" else n
    mb = (size["jsonl"] if "jsonl" in label else size["csv"]) * (4 if label == "process-4x" else 1) / 1e6
    if label.startswith("slice-"):
        mb = size["csv"] / 1e6
    print(f"{label:<14} {wall:8.2f} {orders / wall:10.0f} {mb / wall:7.1f} {rss:12.0f} {wall / imp:9.2f} {wall / good:6.2f}")
sizes = os.path.join(os.path.dirname(times), "sizes")
if os.path.exists(sizes):
    db, failed = (int(x) for x in open(sizes).read().split())
    print(f"all-failing leaves a {db / 1e6:.0f} MB database ({db / size['csv']:.2f} x the input) "
          f"and a {failed / 1e6:.0f} MB failed.csv ({failed / size['csv']:.2f} x)")
PY
